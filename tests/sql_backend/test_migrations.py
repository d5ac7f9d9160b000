"""Migrations: empty database to head, idempotence, schema checks, the shipped wheel."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import stateful
from stateful import cli
from stateful.backends.sql import build_tables, from_url, head_revision, migrate_url
from stateful.backends.sql.schema import version_table_name
from tests.sql_backend.scratch import drop_tables, table_names

_counter = itertools.count()
TABLES = ("links", "pod_states", "workload_states", "alembic_version")


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL, then MariaDB: the databases that do not migrate themselves."""
    url: str = request.getfixturevalue(
        {"postgresql": "postgres_url", "mariadb": "mysql_url"}[request.param]
    )
    return url


@pytest.fixture
async def prefix(sql_url: str) -> AsyncIterator[str]:
    """A table prefix nothing has used yet; its tables are dropped afterwards."""
    name = f"m{os.getpid()}_{next(_counter)}_"
    yield name
    await drop_tables(sql_url, name)


@pytest.fixture
async def server_prefix(server_url: str) -> AsyncIterator[str]:
    """As `prefix`, for `server_url`."""
    name = f"m{os.getpid()}_{next(_counter)}_"
    yield name
    await drop_tables(server_url, name)


async def _version(url: str, prefix: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            version: str | None = await conn.scalar(
                text(f"SELECT version_num FROM {version_table_name(prefix)}")
            )
            return version
    finally:
        await engine.dispose()


async def test_empty_database_migrates_to_head(sql_url: str, prefix: str) -> None:
    assert await migrate_url(sql_url, table_prefix=prefix) == head_revision()
    assert {f"{prefix}{name}" for name in TABLES} <= await table_names(sql_url)
    assert await _version(sql_url, prefix) == head_revision()


async def test_migrating_at_head_changes_nothing(sql_url: str, prefix: str) -> None:
    await migrate_url(sql_url, table_prefix=prefix)
    before = await table_names(sql_url)
    executor = stateful.StatefulExecutor(from_url(sql_url, table_prefix=prefix))
    await executor.set_linked_pod("ns", "kept", "svc", 4, -1)
    assert await migrate_url(sql_url, table_prefix=prefix) == head_revision()
    assert await table_names(sql_url) == before
    assert await executor.get_linked_pod("ns", "kept", "svc") == 4
    await executor.aclose()


def _schema_differences(connection: Connection, prefix: str) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"version_table": version_table_name(prefix), "compare_type": True},
    )
    # compare_metadata also reports every other table (and index) of the database.
    return [
        diff
        for diff in compare_metadata(context, build_tables(prefix).metadata)
        if f"'{prefix}" in repr(diff) or f"_{prefix}" in repr(diff)
    ]


async def test_migrated_schema_matches_the_tables_the_backend_uses(
    sql_url: str, prefix: str
) -> None:
    await migrate_url(sql_url, table_prefix=prefix)
    engine = create_async_engine(sql_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_differences, prefix) == []
    finally:
        await engine.dispose()


async def test_the_applications_alembic_version_table_is_left_alone(
    sql_url: str, prefix: str
) -> None:
    app_table = f"{prefix}app_alembic_version"
    engine = create_async_engine(sql_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {app_table} (version_num VARCHAR(32))"))
            await conn.execute(text(f"INSERT INTO {app_table} VALUES ('app_rev_7')"))
        await migrate_url(sql_url, table_prefix=prefix)
        async with engine.begin() as conn:
            assert await conn.scalar(text(f"SELECT version_num FROM {app_table}")) == "app_rev_7"
            await conn.execute(text(f"DROP TABLE {app_table}"))
    finally:
        await engine.dispose()


async def test_unmigrated_server_raises_schema_error_naming_the_command(
    server_url: str, server_prefix: str
) -> None:
    executor = stateful.StatefulExecutor(from_url(server_url, table_prefix=server_prefix))
    try:
        with pytest.raises(stateful.SchemaError) as caught:
            await executor.get_linked_pod("ns", "u", "svc")
        message = str(caught.value)
        assert "stateful migrate" in message and f"--table-prefix {server_prefix}" in message
        assert "is missing" in message
        # Nothing was created behind the user's back.
        assert f"{server_prefix}links" not in await table_names(server_url)
        # Once migrated, the same executor works: the check is retried until it passes.
        await migrate_url(server_url, table_prefix=server_prefix)
        assert await executor.set_linked_pod("ns", "u", "svc", 1, -1) is None
        assert await executor.get_linked_pod("ns", "u", "svc") == 1
    finally:
        await executor.aclose()


async def test_schema_newer_than_the_package_raises_schema_error(
    server_url: str, server_prefix: str
) -> None:
    await migrate_url(server_url, table_prefix=server_prefix)
    engine = create_async_engine(server_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE {version_table_name(server_prefix)} SET version_num = 'f00dfeed'")
            )
    finally:
        await engine.dispose()
    executor = stateful.StatefulExecutor(from_url(server_url, table_prefix=server_prefix))
    with pytest.raises(stateful.SchemaError, match="newer than this version"):
        await executor.get_workload_state("ns", ["svc"])
    await executor.aclose()


async def test_sqlite_migrates_itself_on_first_use(tmp_path: os.PathLike[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    async with stateful.connect(url) as executor:
        assert await executor.set_linked_pod("ns", "u", "svc", 2, -1) is None
    assert {f"stateful_{name}" for name in TABLES} <= await table_names(url)
    assert await _version(url, "stateful_") == head_revision()


def test_cli_migrates_and_purges(
    tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    assert cli.main(["migrate", "--table-prefix", "cli_", url]) == 0
    assert f"schema at revision {head_revision()}" in capsys.readouterr().out
    assert cli.main(["purge", "--table-prefix", "cli_", url]) == 0
    assert "purged 0 expired links" in capsys.readouterr().out


def _upgrade_to(connection: Connection, prefix: str, revision: str) -> None:
    from alembic import command

    from stateful.backends.sql.migration import alembic_config

    command.upgrade(alembic_config(prefix, connection), revision)


async def _database_at_0001_with_data(url: str, prefix: str, now_ms: int) -> None:
    """Migrate to 0001 only and write rows as stateful 0001 wrote them."""
    from stateful.backends.sql.keys import link_key, owner_key, service_key

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, prefix, "0001")
        async with engine.begin() as conn:
            rows = [
                {
                    "k": link_key(ns, uid, svc),
                    "o": owner_key(ns, uid),
                    "ns": ns,
                    "uid": uid,
                    "svc": svc,
                    "pod": pod,
                    "exp": exp,
                }
                for ns, uid, svc, pod, exp in [
                    ("ns", "alice", "game", 1, None),
                    ("ns", "bob", "game", 1, now_ms + 3_600_000),
                    ("ns", "carol", "game", 2, None),
                    ("ns", "alice", "chat", 1, None),
                    ("other ns", "alice", "game", 5, None),
                    ("ns", "gone", "game", 1, now_ms - 1),
                ]
            ]
            await conn.execute(
                text(
                    f"INSERT INTO {prefix}links (link_key, owner_key, namespace, uid, service, "
                    "pod, expires_at) VALUES (:k, :o, :ns, :uid, :svc, :pod, :exp)"
                ),
                rows,
            )
            await conn.execute(
                text(
                    f"INSERT INTO {prefix}pod_states (service_key, pod, namespace, service, "
                    "state) VALUES (:k, 1, 'ns', 'game', 'ready')"
                ),
                {"k": service_key("ns", "game")},
            )
    finally:
        await engine.dispose()


async def test_upgrading_0001_data_to_head_keeps_every_link(sql_url: str, prefix: str) -> None:
    clock = stateful.ManualClock()
    await _database_at_0001_with_data(sql_url, prefix, clock.now_ms())
    assert await _version(sql_url, prefix) == "0001"
    before_ms = int(time.time() * 1000)
    assert await migrate_url(sql_url, table_prefix=prefix) == head_revision() == "0002"
    backend = from_url(sql_url, table_prefix=prefix, clock=clock)
    try:
        assert await backend.get_linked_pod("ns", "alice", "game") == 1
        assert await backend.get_linked_pod("ns", "bob", "game") == 1
        assert await backend.get_link_service("ns", "alice") == {"game": 1, "chat": 1}
        assert await backend.get_linked_pod("other ns", "alice", "game") == 5
        assert await backend.get_service_state("ns", "game") == {1: "ready"}
        # The backfilled service_key serves the pod queries.
        assert await backend.count_pod_links("ns", "game") == {1: 2, 2: 1}
        uids, cursor = await backend.pod_links_page("ns", "game", 1, None, 10)
        assert sorted(uids) == ["alice", "bob"] and cursor is None
        info = await backend.get_link_info("ns", "bob", "game")
        assert info is not None
        assert info.expires_at_ms == clock.now_ms() + 3_600_000
        assert before_ms <= info.updated_at_ms <= int(time.time() * 1000)
        # Old rows take part in new writes as before.
        assert await backend.set_linked_pod("ns", "carol", "game", 4, -1) == 2
        assert await backend.count_pod_links("ns", "game") == {1: 2, 4: 1}
    finally:
        await backend.aclose()
    engine = create_async_engine(sql_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_differences, prefix) == []
    finally:
        await engine.dispose()


async def test_server_database_at_0001_raises_schema_error(
    server_url: str, server_prefix: str
) -> None:
    await _database_at_0001_with_data(server_url, server_prefix, 0)
    executor = stateful.StatefulExecutor(from_url(server_url, table_prefix=server_prefix))
    try:
        with pytest.raises(stateful.SchemaError) as caught:
            await executor.get_linked_pod("ns", "alice", "game")
        assert "is outdated (revision '0001'" in str(caught.value)
        assert "stateful migrate" in str(caught.value)
        await migrate_url(server_url, table_prefix=server_prefix)
        assert await executor.get_linked_pod("ns", "alice", "game") == 1
    finally:
        await executor.aclose()
