"""SQLite's link writes on the backend's own connection (`sqlite_writer.SQLiteWriter`):
when it is used, that it is opened like the engine's, replaced when closed, and closed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy.pool import NullPool

from stateful import ManualClock, StatefulError, StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from stateful.backends.sql.dialects.sqlite import SQLiteDialect
from stateful.backends.sql.engines import create_engine
from stateful.backends.sql.sqlite_writer import SQLiteWriter

NS, SVC = "ns", "svc"


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"


def _writer(backend: SQLBackend) -> SQLiteWriter | None:
    dialect = backend.dialect
    assert isinstance(dialect, SQLiteDialect)
    return dialect.writer


def _connection(writer: SQLiteWriter) -> aiosqlite.Connection:
    # The writer's current connection: what the tests below break or compare.
    conn = writer._conn
    assert conn is not None
    return conn


async def test_link_writes_go_to_the_writer_not_to_the_pool(tmp_path: Path) -> None:
    backend = from_url(_url(tmp_path), pool_size=1, clock=ManualClock())
    try:
        assert _writer(backend) is not None
        await backend.get_linked_pod(NS, "u", SVC)  # schema checked
        async with backend.engine.connect():  # the pool's one connection, held
            assert await backend.set_linked_pod(NS, "u", SVC, 1, -1) is None
            assert await backend.try_set_linked_pod(NS, "u", SVC, 2, -1) == (False, 1)
            assert await backend.set_linked_pod_if_absent(NS, "v", SVC, 3, 60) == 3
            assert await backend.place_linked_pod(NS, "w", SVC, -1, 4) == 4
        assert await backend.get_link_service(NS, "u") == {SVC: 1}
        assert await backend.get_linked_pod(NS, "v", SVC) == 3
        assert await backend.get_link_service(NS, "w") == {SVC: 4}
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    "options",
    [{"poolclass": NullPool}, {"pool_pre_ping": True}, {"creator": lambda: None}],
    ids=["poolclass", "pool_pre_ping", "creator"],
)
def test_no_writer_where_pooling_was_changed(tmp_path: Path, options: dict[str, Any]) -> None:
    assert _writer(from_url(_url(tmp_path), **options)) is None


def test_no_writer_for_memory_or_an_application_engine(tmp_path: Path) -> None:
    assert _writer(from_url("sqlite+aiosqlite:///:memory:")) is None
    assert _writer(SQLBackend(create_engine(_url(tmp_path)))) is None


async def test_the_writer_is_opened_like_the_engines_connections(tmp_path: Path) -> None:
    backend = from_url(_url(tmp_path), connect_args={"timeout": 7.5})
    writer = _writer(backend)
    assert writer is not None
    pragmas = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        async with backend.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, aiosqlite.Connection)
            engines = [await (await driver.execute(f"PRAGMA {p}")).fetchone() for p in pragmas]
        own = _connection(writer)
        writers = [await (await own.execute(f"PRAGMA {p}")).fetchone() for p in pragmas]
        assert writers == engines
        assert writers[:3] == [("wal",), (1,), (7500,)]
        assert own.isolation_level is None  # autocommit: the trips frame themselves
    finally:
        await backend.aclose()


async def test_a_closed_writer_connection_is_replaced(tmp_path: Path) -> None:
    backend = from_url(_url(tmp_path), clock=ManualClock())
    writer = _writer(backend)
    assert writer is not None
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        first = _connection(writer)
        await first.close()  # closed between two writes
        assert await backend.set_linked_pod(NS, "u", SVC, 2, -1) == 1
        second = _connection(writer)
        assert second is not first
        # Told to stop with a write queued on it: the write runs first, and
        # the next write opens a new connection.
        blocker = asyncio.ensure_future(second._execute(time.sleep, 0.2))  # type: ignore[no-untyped-call]
        queued = asyncio.create_task(backend.set_linked_pod(NS, "u", SVC, 3, -1))
        await asyncio.sleep(0.05)  # the write is queued behind the blocker
        second.stop()
        await blocker
        assert await queued == 2
        assert await backend.set_linked_pod(NS, "u", SVC, 4, -1) == 3
        assert _connection(writer) not in (first, second)
    finally:
        await backend.aclose()


async def test_aclose_closes_the_writer_after_its_queued_writes(tmp_path: Path) -> None:
    backend = from_url(_url(tmp_path), clock=ManualClock())
    writer = _writer(backend)
    assert writer is not None
    ex = StatefulExecutor(backend)
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    conn = _connection(writer)
    writes = [asyncio.create_task(ex.set_linked_pod(NS, f"w{i}", SVC, 2, -1)) for i in range(50)]
    await asyncio.sleep(0)
    await ex.aclose()
    assert all(w.done() and w.result() is None for w in writes)
    assert not conn._thread.is_alive()
    with pytest.raises(StatefulError):
        await backend.set_linked_pod(NS, "u", SVC, 2, -1)
    check = from_url(_url(tmp_path))
    try:
        assert await check.batch_get_linked_pod(NS, [f"w{i}" for i in range(50)], SVC) == {
            2: [f"w{i}" for i in range(50)]
        }
    finally:
        await check.aclose()


async def test_a_write_waits_for_another_process_s_lock_then_runs(tmp_path: Path) -> None:
    import sqlite3

    backend = from_url(_url(tmp_path), clock=ManualClock())
    other = sqlite3.connect(tmp_path / "writer.db", isolation_level=None)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(backend.set_linked_pod(NS, "u", SVC, 2, -1))
        await asyncio.sleep(0.2)
        assert not write.done()  # at the busy timeout, in the writer's thread
        other.execute("ROLLBACK")
        assert await write == 1
        assert await backend.get_linked_pod(NS, "u", SVC) == 2
    finally:
        other.close()
        await backend.aclose()
