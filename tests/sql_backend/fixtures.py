"""Databases for the SQL backend tests (a pytest plugin): SQLite, PostgreSQL, MariaDB.

PostgreSQL: ``STATEFUL_TEST_POSTGRES_URL`` if set; else the server on
127.0.0.1:5432 if it answers (database ``stateful_test``, created if needed);
else a server spawned from ``initdb``/``postgres`` on PATH. MariaDB/MySQL
likewise with ``STATEFUL_TEST_MYSQL_URL``, port 3306 and
``mariadb-install-db``/``mariadbd``. A missing server skips locally and fails
under ``CI=true`` (`tests.support.server_missing`).

Each session migrates its own table prefix (`endpoints.PREFIX`) once and
drops those tables at the end; the fixtures also publish their URLs in
`endpoints` for the conformance machine's factories.

``<name>_store_factory`` fixtures (``sqlite``, ``postgresql``, ``mariadb``)
follow the backend matrix's convention (`tests.matrix`): an async
``factory(clock) -> Backend`` over an empty store.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from stateful.backend import Backend
from stateful.backends.sql import migrate_url
from stateful.clock import ManualClock
from tests.sql_backend import endpoints
from tests.sql_backend.scratch import drop_tables, empty_backend
from tests.sql_backend.servers import (
    MariaDBProcess,
    PostgresProcess,
    mariadb_binaries,
    postgres_binaries,
)
from tests.support import port_open, server_missing

DATABASE = "stateful_test"
T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous fixture code.

    A session fixture may be set up from inside a running loop (an async
    fixture asking for it with ``request.getfixturevalue``), where
    ``asyncio.run`` is refused; it then runs on a loop of its own in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _answers(url: str) -> bool:
    engine = create_async_engine(url, connect_args={"timeout": 5} if "postgresql" in url else {})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def _with_database(server_url: str) -> str:
    """Create database `DATABASE` on the server if needed; return its URL."""
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                found = await conn.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE}
                )
                if not found:
                    await conn.execute(text(f"CREATE DATABASE {DATABASE}"))
            else:
                found = await conn.scalar(
                    text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
                    {"name": DATABASE},
                )
                if not found:
                    await conn.execute(text(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4"))
    finally:
        await engine.dispose()
    return make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)


def _server(
    env: str, default: str, port: int, spawn: type[PostgresProcess | MariaDBProcess], what: str
) -> Iterator[str]:
    url = os.environ.get(env)
    server: PostgresProcess | MariaDBProcess | None = None
    if url:
        if not run_blocking(_answers(url)):
            server_missing(f"{env}={url} does not answer")
    elif port_open("127.0.0.1", port) and run_blocking(_answers(default)):
        url = run_blocking(_with_database(default))
    else:
        binaries = postgres_binaries() if spawn is PostgresProcess else mariadb_binaries()
        if binaries is None:
            server_missing(f"no {what}: set {env}, run one on port {port}, or install it")
        server = spawn()
        url = run_blocking(_with_database(server.url))
    try:
        run_blocking(migrate_url(url, table_prefix=endpoints.PREFIX))
        yield url
    finally:
        try:
            run_blocking(drop_tables(url, endpoints.PREFIX))
        finally:
            if server is not None:
                server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database migrated for `endpoints.PREFIX`."""
    for url in _server(
        "STATEFUL_TEST_POSTGRES_URL",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        5432,
        PostgresProcess,
        "PostgreSQL",
    ):
        endpoints.POSTGRES = url
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of a MariaDB (or MySQL) database migrated for `endpoints.PREFIX`."""
    for url in _server(
        "STATEFUL_TEST_MYSQL_URL",
        "mysql+asyncmy://root@127.0.0.1:3306/mysql",
        3306,
        MariaDBProcess,
        "MariaDB",
    ):
        endpoints.MYSQL = url
        yield url


@pytest.fixture(scope="session")
def sqlite_file_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a SQLite file for this session, migrated for `endpoints.PREFIX`."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'stateful.db'}"
    run_blocking(migrate_url(url, table_prefix=endpoints.PREFIX))
    endpoints.SQLITE_FILE = url
    return url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sql_url(request: pytest.FixtureRequest) -> str:
    """Each database in turn (SQLite file, PostgreSQL, MariaDB), migrated."""
    fixture = {"sqlite": "sqlite_file_url", "postgresql": "postgres_url", "mariadb": "mysql_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


_private = itertools.count()


@pytest.fixture
async def private_prefix(sql_url: str) -> AsyncIterator[str]:
    """A table prefix migrated for this test alone (tables dropped afterwards)."""
    prefix = f"p{os.getpid()}_{next(_private)}_"
    await migrate_url(sql_url, table_prefix=prefix)
    yield prefix
    await drop_tables(sql_url, prefix)


StoreFactory = Callable[[ManualClock], Awaitable[Backend]]


@pytest.fixture
def sqlite_store_factory(sqlite_file_url: str) -> StoreFactory:
    """Backends over the emptied tables of the session's SQLite file."""

    async def make(clock: ManualClock) -> Backend:
        return await empty_backend(sqlite_file_url, clock)

    return make


@pytest.fixture
def postgresql_store_factory(postgres_url: str) -> StoreFactory:
    """Backends over the session's emptied PostgreSQL tables."""

    async def make(clock: ManualClock) -> Backend:
        return await empty_backend(postgres_url, clock)

    return make


@pytest.fixture
def mariadb_store_factory(mysql_url: str) -> StoreFactory:
    """Backends over the session's emptied MariaDB tables."""

    async def make(clock: ManualClock) -> Backend:
        return await empty_backend(mysql_url, clock)

    return make
