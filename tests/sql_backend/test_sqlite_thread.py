"""SQLite's one-trip path (`dialects.sqlite_thread`): cancellation, pooled connections,
and the raw sqlite3/aiosqlite errors it meets unwrapped."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from stateful import BackendUnavailable, ManualClock, StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from stateful.backends.sql import errors as sql_errors
from stateful.backends.sql.dialects import sqlite_thread

NS, SVC = "ns", "svc"


def _backend(tmp_path: Path) -> SQLBackend:
    return from_url(f"sqlite+aiosqlite:///{tmp_path / 'thread.db'}", clock=ManualClock())


def _checked_out(backend: SQLBackend) -> int:
    return int(backend.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


def test_this_aiosqlite_runs_jobs_in_its_thread() -> None:
    # The fast path is what the figures in docs/benchmarks.md measure: a new
    # aiosqlite without the private names would silently fall back.
    assert sqlite_thread.THREAD


async def test_cancelled_writes_leave_each_link_before_or_after(tmp_path: Path) -> None:
    """Cancel writes at random points: each link is the old pod or the new, never torn.

    The following write reads it back consistently (its previous pod), and
    no connection stays checked out.
    """
    backend = _backend(tmp_path)
    try:
        uids = [f"u{i}" for i in range(150)]
        for uid in uids:
            assert await backend.set_linked_pod(NS, uid, SVC, 1, -1) is None
        rng = random.Random(7)
        for uid in uids:
            task = asyncio.create_task(backend.set_linked_pod(NS, uid, SVC, 2, -1))
            await asyncio.sleep(rng.choice([0, 0, 0.0001, 0.0003, 0.001]))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert _checked_out(backend) == 0
        for uid in uids:
            seen = await backend.get_linked_pod(NS, uid, SVC)
            assert seen in (1, 2)
            assert await backend.set_linked_pod(NS, uid, SVC, 3, -1) == seen
            assert await backend.get_link_service(NS, uid) == {SVC: 3}
        assert _checked_out(backend) == 0
    finally:
        await backend.aclose()


async def test_a_write_cancelled_while_waiting_for_the_write_lock_is_rolled_back(
    tmp_path: Path,
) -> None:
    """Cancelled during ``BEGIN IMMEDIATE`` (another process holds the lock): nothing
    is written, and the connection does not keep a transaction open."""
    backend = _backend(tmp_path)
    other = sqlite3.connect(tmp_path / "thread.db", isolation_level=None)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(backend.set_linked_pod(NS, "u", SVC, 2, -1))
        await asyncio.sleep(0.2)  # waiting in SQLite's busy handler
        task.cancel()
        other.execute("ROLLBACK")
        await asyncio.gather(task, return_exceptions=True)
        assert _checked_out(backend) == 0
        # Another process can write at once: no connection of ours holds the lock.
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        assert await backend.get_linked_pod(NS, "u", SVC) == 1
        assert await backend.set_linked_pod(NS, "u", SVC, 3, -1) == 1
    finally:
        other.close()
        await backend.aclose()


async def test_a_closed_driver_connection_is_unavailable_then_replaced(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    executor = StatefulExecutor(backend)
    try:
        await executor.set_linked_pod(NS, "u", SVC, 1, -1)
        async with backend.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.close()  # type: ignore[union-attr]
        with pytest.raises(BackendUnavailable):
            await executor.get_linked_pod(NS, "u", SVC)
        assert await executor.get_linked_pod(NS, "u", SVC) == 1
        assert await executor.set_linked_pod(NS, "u", SVC, 2, -1) == 1
    finally:
        await executor.aclose()


def _busy_error(tmp_path: Path) -> sqlite3.OperationalError:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiter.execute("BEGIN IMMEDIATE")
        return caught.value
    finally:
        holder.close()
        waiter.close()


def test_raw_busy_and_locked_errors_are_retryable(tmp_path: Path) -> None:
    busy = _busy_error(tmp_path)
    assert sql_errors.sqlite_code(busy) == 5
    assert sql_errors.is_retryable(busy)
    assert not sql_errors.is_unavailable(busy)
    locked = sqlite3.OperationalError("database table is locked")
    locked.sqlite_errorcode = 6
    assert sql_errors.is_retryable(locked)
    assert not sql_errors.is_unavailable(locked)


def test_raw_closed_connection_errors_are_unavailable() -> None:
    conn = sqlite3.connect(":memory:")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError) as closed:
        conn.execute("SELECT 1")
    assert sql_errors.is_unavailable(closed.value)
    assert not sql_errors.is_retryable(closed.value)
    for message in ("no active connection", "Connection closed"):
        assert sql_errors.is_unavailable(ValueError(message))
        assert sql_errors.is_unavailable(sqlite3.OperationalError(message))
    assert not sql_errors.is_unavailable(ValueError("no active connection, but more"))
    assert not sql_errors.is_unavailable(sqlite3.IntegrityError("UNIQUE constraint failed"))


async def test_batch_reads_across_several_statements(tmp_path: Path) -> None:
    """More keys than one ``IN (...)`` list takes: one job runs every batch."""
    backend = _backend(tmp_path)
    try:
        uids = [f"u{i}" for i in range(1234)]
        for i, uid in enumerate(uids[::2]):
            await backend.set_linked_pod(NS, uid, SVC, i % 3, -1)
        grouped = await backend.batch_get_linked_pod(NS, uids, SVC)
        assert {pod: len(found) for pod, found in grouped.items()} == {0: 206, 1: 206, 2: 205}
        assert grouped[0][:2] == ["u0", "u6"]
        assert await backend.batch_get_linked_pod(NS, [], SVC) == {}
        services = [f"s{i}" for i in range(700)]
        for name in services[:3]:
            await backend.set_workload_state(NS, name, f"st-{name}")
        found = await backend.get_workload_state(NS, [*services, "s1"])
        assert found == {"s0": "st-s0", "s1": "st-s1", "s2": "st-s2"}
        assert _checked_out(backend) == 0
    finally:
        await backend.aclose()


async def test_without_the_private_names_jobs_run_through_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiosqlite without ``_execute``/``_conn``: same answers, through SQLAlchemy."""
    from stateful.backends.sql.dialects import sqlite as sqlite_dialect

    monkeypatch.setattr(sqlite_thread, "THREAD", False)
    monkeypatch.setattr(sqlite_dialect, "THREAD", False)
    backend = _backend(tmp_path)
    assert not backend.dialect.late_clock
    try:
        assert await backend.set_linked_pod(NS, "u", SVC, 1, -1) is None
        assert await backend.set_linked_pod(NS, "u", SVC, 2, -1) == 1
        assert await backend.try_set_linked_pod(NS, "u", SVC, 3, -1) == (False, 2)
        assert await backend.set_linked_pod_if_absent(NS, "v", SVC, 4, 60) == 4
        assert await backend.batch_get_linked_pod(NS, ["u", "v", "w"], SVC) == {
            2: ["u"],
            4: ["v"],
        }
        assert await backend.remove_linked_pod_with_id(NS, "v", SVC, 0, 4)
        assert await backend.get_linked_pod(NS, "v", SVC) is None
        await backend.set_service_state(NS, SVC, 2, "ready")
        assert await backend.get_service_state(NS, SVC) == {2: "ready"}
        assert await backend.count_pod_links(NS, SVC) == {2: 1}
        assert _checked_out(backend) == 0
    finally:
        await backend.aclose()


async def test_a_write_is_one_trip_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN IMMEDIATE, the clock, the statements and COMMIT: one job in aiosqlite's thread.

    A read that is one statement stays one trip too.
    """
    import aiosqlite

    backend = _backend(tmp_path)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)  # schema check, connection opened
        await backend.get_linked_pod(NS, "u", SVC)
        trips: list[object] = []
        execute: Callable[..., Awaitable[object]] = aiosqlite.Connection._execute

        async def counted(self: aiosqlite.Connection, fn: object, *args: object) -> object:
            trips.append(fn)
            return await execute(self, fn, *args)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: backend.set_linked_pod(NS, "u", SVC, 2, -1),
            lambda: backend.try_set_linked_pod(NS, "u", SVC, 3, 60),
            lambda: backend.set_linked_pod_if_absent(NS, "v", SVC, 4, 60),
            lambda: backend.place_linked_pod(NS, "v", SVC, 60, None),
            lambda: backend.remove_linked_pod(NS, "v", SVC, 30),
            lambda: backend.set_service_state(NS, SVC, 2, "ready"),
            lambda: backend.remove_service_state(NS, SVC, 2),
            lambda: backend.set_workload_state(NS, SVC, "stable"),
        ]
        for write in writes:
            trips.clear()
            await write()
            assert len(trips) == 1, write
        trips.clear()
        assert await backend.get_linked_pod(NS, "u", SVC) == 2
        assert len(trips) == 1
    finally:
        await backend.aclose()


async def test_aclose_waits_for_the_thread_of_a_terminated_connection(tmp_path: Path) -> None:
    """SQLAlchemy terminates a connection whose graceful close is cancelled: aiosqlite's
    thread is only told to stop, and first finishes the jobs queued on it. `aclose`
    waits for it, or the thread would hand its last result to an event loop that
    may be closed by then ("Event loop is closed" in aiosqlite's thread)."""
    import time

    import aiosqlite

    backend = _backend(tmp_path)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        async with backend.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, aiosqlite.Connection)
            slow = asyncio.ensure_future(driver._execute(time.sleep, 0.3))  # type: ignore[no-untyped-call]
            invalidating = asyncio.create_task(conn.invalidate())
            await asyncio.sleep(0.05)  # its graceful close queued behind the slow job
            invalidating.cancel()
            await asyncio.gather(invalidating, return_exceptions=True)
        thread = driver._thread
        assert driver._running is False and thread.is_alive() and not slow.done()
    finally:
        await backend.aclose()
    assert not thread.is_alive()
    assert await slow is None


async def test_aclose_waits_for_the_thread_of_a_failed_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connect that fails leaves aiosqlite's thread told to stop, not stopped
    (`_connect` calls ``stop()`` without awaiting it); `aclose` waits for it too."""
    import time

    import aiosqlite

    stopped: list[aiosqlite.Connection] = []
    stop = aiosqlite.Connection.stop

    def slow_stop(self: aiosqlite.Connection) -> object:
        # Keep the thread busy first, as a loaded machine may: the stop's
        # result then reaches the loop late.
        self._tx.put_nowait((None, lambda: time.sleep(0.3)))
        stopped.append(self)
        return stop(self)

    monkeypatch.setattr(aiosqlite.Connection, "stop", slow_stop)
    backend = from_url(f"sqlite+aiosqlite:///{tmp_path / 'no such dir' / 'x.db'}")
    with pytest.raises(BackendUnavailable):
        await backend.get_linked_pod(NS, "u", SVC)
    assert stopped and stopped[0]._thread.is_alive()
    await backend.aclose()
    assert not stopped[0]._thread.is_alive()


async def test_an_overwrite_sets_only_the_columns_that_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite rewrites every index holding a SET column, even for an equal value:
    re-setting a permanent link to its pod must update its time alone."""
    backend = _backend(tmp_path)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        sent: list[str] = []
        render = sqlite_thread.Prepared.render

        def recorded(self: sqlite_thread.Prepared, params: object) -> tuple[str, list[object]]:
            sql, values = render(self, params)  # type: ignore[arg-type]
            sent.append(" ".join(sql.split()))
            return sql, values

        monkeypatch.setattr(sqlite_thread.Prepared, "render", recorded)

        async def set_clauses(pod: int, persist: int) -> list[str]:
            sent.clear()
            await backend.set_linked_pod(NS, "u", SVC, pod, persist)
            return [sql.split(" SET ")[1].split(" WHERE ")[0] for sql in sent if " SET " in sql]

        assert await set_clauses(1, -1) == ["updated_at=?"]
        assert await set_clauses(2, -1) == ["pod=?, updated_at=?"]
        assert await set_clauses(2, 30) == ["expires_at=(? + ?), updated_at=?"]
        assert await set_clauses(3, -1) == ["pod=?, expires_at=(? + ?), updated_at=?"]
    finally:
        await backend.aclose()


async def test_time_follows_the_order_of_the_write_lock(tmp_path: Path) -> None:
    """``now`` is read in the thread once the write lock is held: a writer that
    queued behind another process's transaction stamps the time it got the lock."""
    clock = ManualClock()
    backend = from_url(f"sqlite+aiosqlite:///{tmp_path / 'thread.db'}", clock=clock)
    other = sqlite3.connect(tmp_path / "thread.db", isolation_level=None)
    try:
        await backend.set_linked_pod(NS, "u", SVC, 1, -1)
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(backend.set_linked_pod(NS, "u", SVC, 2, -1))
        await asyncio.sleep(0.1)  # waiting in SQLite's busy handler
        clock.advance(5)
        other.execute("ROLLBACK")
        assert await task == 1
        info = await backend.get_link_info(NS, "u", SVC)
        assert info is not None and info.updated_at_ms == clock.now_ms()
    finally:
        other.close()
        await backend.aclose()

