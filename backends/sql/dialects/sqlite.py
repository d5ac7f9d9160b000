"""SQLite: one writer at a time, taken at ``BEGIN IMMEDIATE``.

SQLite locks the whole database for writing. A transaction that starts
with a plain (deferred) ``BEGIN``, reads, and then writes may find the lock
taken and fail at once with "database is locked", because waiting could
deadlock. Starting every write transaction with ``BEGIN IMMEDIATE`` takes the
write lock first, where the busy timeout applies, so writers queue instead of
failing. Reads use a deferred ``BEGIN``: under WAL they never block and see
one snapshot.

The statements are issued here rather than from a ``begin`` event hook so
that they also work on an engine the application built and configured
itself, whatever transaction mode its driver is in.

Writers of one process also queue on an `asyncio.Lock` per database file
(shared by every engine of the event loop) before they take a connection:
SQLite admits one writer anyway, and a queue in the process hands the write
lock over at once, where waiting in SQLite's busy handler would sleep in
growing steps (up to 100 ms). Writers in other processes still meet at the
busy timeout.

Operations reach sqlite3 in one trip to aiosqlite's thread each
(`sqlite_thread`): a write is ``BEGIN IMMEDIATE``, the clock read once the
write lock is held (so time follows the order of commits), its statements
and the COMMIT, all in one job (`SQLiteDialect.run_timed`). A read that is
one statement is one trip.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, NamedTuple, TypeVar

import aiosqlite
from sqlalchemy import Insert, Table, delete, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from stateful.clock import Clock
from stateful.errors import BackendUnavailable

from ..engines import SQLITE_ON_CONNECT
from ..errors import RetryTransaction, sqlite_code
from ..schema import Tables
from ..sqlite_writer import SQLiteWriter
from .base import LinkId, overwrite_for
from .on_conflict import OnConflictDialect
from .sqlite_thread import LATE, THREAD, Execute, Job, Prepared, Workers, run_job

T = TypeVar("T")

#: SQLite's result code for "unable to open database file".
SQLITE_CANTOPEN = 14

_writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _driver(conn: Connection) -> aiosqlite.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, aiosqlite.Connection), "the SQLite backend needs aiosqlite"
    return driver


#: Writes that are one job each (the statements of `SQLiteDialect`'s
#: operations), hence one trip with their BEGIN and COMMIT (`run_timed`).
LATE_CLOCK = frozenset(
    {
        "set_linked_pod",
        "try_set_linked_pod",
        "set_linked_pod_if_absent",
        "place_linked_pod",
        "remove_linked_pod",
        "set_service_state",
        "remove_service_state",
        "set_workload_state",
    }
)


class _Timed(NamedTuple, Generic[T]):
    """A write of `LATE_CLOCK`: its body, and the clock its job reads ``now`` from."""

    body: Callable[[Connection, int], T]
    now: Callable[[], int]


class LinkRow(NamedTuple):
    """A live link as `SQLiteDialect.get_link_info` returns it (as SQLAlchemy's row would)."""

    pod: int
    expires_at: int | None
    updated_at: int


def writer_lock(database: str) -> asyncio.Lock:
    """Return the lock that writers of ``database`` in this event loop queue on."""
    # Looked up on every write: build a dict or lock only the first time.
    loop = asyncio.get_running_loop()
    locks = _writer_locks.get(loop)
    if locks is None:
        locks = _writer_locks[loop] = {}
    lock = locks.get(database)
    if lock is None:
        lock = locks[database] = asyncio.Lock()
    return lock


def rows_of(prepared: Prepared, params: Mapping[str, Any]) -> Job[list[Any]]:
    """Return the job that runs one statement and returns its rows."""

    def rows(execute: Execute) -> list[Any]:
        return list(execute(prepared, params).fetchall())

    return rows


def stored_pod(rows: list[Any]) -> int:
    """Return the pod a link upsert ``... RETURNING pod`` left."""
    if not rows:  # pragma: no cover - an upsert always leaves the row
        raise RetryTransaction("the upsert left no row")
    return int(rows[0][0])


class SQLiteDialect(OnConflictDialect):
    """SQLite 3.35+ (``RETURNING``), through aiosqlite."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the SQLite upserts on top of the portable statements.

        SQLite runs in this process: its "server clock" is the system clock,
        which the backend binds as ``now``; ``server_clock`` must be False.
        """
        super().__init__(engine, tables, purge_batch_size=purge_batch_size)
        links = tables.links
        expired = (
            select(links.c.link_key)
            .where(links.c.expires_at <= self.now)
            .limit(purge_batch_size)
            .scalar_subquery()
        )
        self.purge = delete(links).where(links.c.link_key.in_(expired))
        database = engine.url.database or ""
        self.database = os.path.abspath(database) if database else database
        self.workers = Workers(engine)
        #: The backend's own connection for the link writes (`hot_set_linked_pod`), if any.
        self.writer: SQLiteWriter | None = None
        #: Write transactions `open` began whose last job may COMMIT too.
        self.finishing: set[Connection] = set()
        #: Write transactions not begun yet: their one job begins them, reads
        #: ``now`` with this function once it holds the lock, and commits.
        self.unbegun: dict[Connection, Callable[[], int]] = {}
        if THREAD and self.explicit:
            self.late_clock = LATE_CLOCK
        # Every statement of the operations below, compiled once for sqlite3.
        prepare = self.prepare
        self.q_live_pod = prepare(self.select_live_pod)
        self.q_permanent_pod = prepare(self.select_permanent_pod)
        self.q_link_info = prepare(self.select_link_info)
        self.q_permanent_links = prepare(self.select_permanent_links)
        self.q_link_locked = prepare(self.select_link_locked)
        self.q_insert_link = prepare(self.insert_link)
        self.q_update_link = {
            changes: prepare(statement) for changes, statement in self.update_link.items()
        }
        self.q_upserts = {
            statement: prepare(statement)
            for statement in (self.try_set_statement, self.if_absent_statement)
        }
        self.q_refresh = prepare(self.refresh_live_returning)
        # remove_linked_pod: by (keeps the link, names a pod).
        self.q_remove = {
            (False, False): prepare(self.delete_live),
            (False, True): prepare(self.delete_live_with_pod),
            (True, False): prepare(self.keep_live),
            (True, True): prepare(self.keep_live_with_pod),
        }
        self.q_pod_states = prepare(self.select_pod_states)
        self.q_upsert_pod_state = prepare(self.upsert_pod_state)
        self.q_delete_pod_state = prepare(self.delete_pod_state)
        self.q_upsert_workload = prepare(self.upsert_workload_state)
        self.q_pod_page = prepare(self.select_pod_page)
        self.q_count_links = prepare(self.count_links)
        self.q_purge = prepare(self.purge)
        self.q_live_batch = prepare(self.select_live_batch)
        self.q_workloads = prepare(self.select_workloads)

    def prepare(self, statement: Any) -> Prepared:
        """Compile ``statement`` for sqlite3 (`sqlite_thread.Prepared`)."""
        return Prepared.compile(statement, self.sync_engine.dialect)

    def job(self, conn: Connection, job: Job[T]) -> T:
        """Run ``job`` in one trip to aiosqlite's thread (`sqlite_thread.run_job`).

        If ``conn`` holds a write transaction `open` began, the job ends it:
        its COMMIT rides the same trip. Jobs are whole operations, the last
        thing their transaction does. On a write not begun yet (`run_timed`),
        the job is the whole transaction: BEGIN IMMEDIATE, ``now``, statements,
        COMMIT.
        """
        now = self.unbegun.pop(conn, None)
        if now is not None:
            return run_job(conn, job, commit=True, now=now)
        commit = THREAD and conn in self.finishing
        if commit:
            self.finishing.discard(conn)
        return run_job(conn, job, commit=commit)

    def one(self, conn: Connection, prepared: Prepared, params: Mapping[str, Any]) -> list[Any]:
        """Run one statement as a job; return its rows."""
        return self.job(conn, rows_of(prepared, params))

    def changed(self, conn: Connection, prepared: Prepared, params: Mapping[str, Any]) -> int:
        """Run one INSERT, UPDATE or DELETE as a job; return how many rows it changed."""

        def count(execute: Execute) -> int:
            return execute(prepared, params).rowcount

        return self.job(conn, count)

    @contextmanager
    def open(self, *, write: bool, single: bool) -> Iterator[Connection]:
        """Frame the transaction; a write's COMMIT may ride its last job's trip (`job`).

        Whatever interrupts the transaction (an error, a cancellation, also
        during ``BEGIN IMMEDIATE``) rolls it back before the connection goes
        back to the pool; after a job that ended it, that ROLLBACK is a no-op.
        """
        if not (THREAD and write and self.explicit):
            with super().open(write=write, single=single) as conn:
                yield conn
            return
        with self.checkout(self.sync_engine) as conn:
            try:
                self.begin(conn, write=True)
                self.finishing.add(conn)
                yield conn
            except BaseException:
                self.finishing.discard(conn)
                self.abort(conn)
                raise
            if conn in self.finishing:  # no job ended it
                self.finishing.discard(conn)
                self.commit(conn)

    async def run_timed(
        self,
        body: Callable[[Connection, int], T],
        clock: Clock,
        *,
        write: bool,
        single: bool,
    ) -> T:
        """Run a write of `late_clock` in one trip: its job begins, reads ``now``, commits.

        ``body`` gets `LATE` as ``now``; its one job (`job`) runs ``BEGIN
        IMMEDIATE``, reads ``clock`` once it holds the write lock, binds that
        as ``now``, runs the statements and commits, all in one trip to
        aiosqlite's thread. Turns, checkout and pool accounting are `run`'s.
        """
        timed = _Timed(body, clock.now_ms)
        return await self.in_turn(self._timed_transaction, timed, write, single)

    def _timed_transaction(self, timed: _Timed[T], write: bool, single: bool) -> T:
        # No BEGIN here: the body's one job begins (see `job`).
        with self.checkout(self.sync_engine) as conn:
            self.unbegun[conn] = timed.now
            try:
                result: T = timed.body(conn, LATE)
            except BaseException:
                # Its job rolled back what it began; a job that never got
                # into the thread began nothing: ROLLBACK is a no-op then.
                # Either way the connection leaves outside a transaction.
                self.abort(conn)
                raise
            finally:
                self.unbegun.pop(conn, None)
            return result

    # -- the operations, as jobs ---------------------------------------------------------

    def get_linked_pod(self, conn: Connection, key: bytes, now: int) -> int | None:
        """``SELECT pod ... AND live``."""
        rows = self.one(conn, self.q_live_pod, {"b_link_key": key, "now": now})
        return int(rows[0][0]) if rows else None

    def get_linked_pod_if_persist(self, conn: Connection, key: bytes) -> int | None:
        """``SELECT pod ... AND expires_at IS NULL``."""
        rows = self.one(conn, self.q_permanent_pod, {"b_link_key": key})
        return int(rows[0][0]) if rows else None

    def get_link_info(self, conn: Connection, key: bytes, now: int) -> Any:
        """``SELECT pod, expires_at, updated_at ... AND live`` as a `LinkRow`, or None."""
        rows = self.one(conn, self.q_link_info, {"b_link_key": key, "now": now})
        return LinkRow(*rows[0]) if rows else None

    def batch_get_linked_pod(
        self, conn: Connection, keys: Sequence[bytes], now: int
    ) -> dict[bytes, int]:
        """``SELECT link_key, pod ... IN (...)`` per batch of keys, all in one job."""
        return self.read_batches(conn, self.q_live_batch, keys, {"now": now})

    def get_workload_state(
        self, conn: Connection, service_keys: Sequence[bytes]
    ) -> dict[bytes, str]:
        """``SELECT service_key, state ... IN (...)`` per batch of keys, all in one job."""
        return self.read_batches(conn, self.q_workloads, service_keys, {})

    def read_batches(
        self, conn: Connection, prepared: Prepared, keys: Sequence[bytes], params: dict[str, Any]
    ) -> dict[Any, Any]:
        """Run ``prepared`` for each batch of ``keys`` (its list parameter ``keys``); merge."""
        parts = self.batches(keys)

        def read(execute: Execute) -> dict[Any, Any]:
            found: dict[Any, Any] = {}
            for part in parts:
                found.update(execute(prepared, {**params, "keys": part}).fetchall())
            return found

        return self.job(conn, read)

    def get_link_service(self, conn: Connection, owner: bytes) -> dict[str, int]:
        """``SELECT service, pod`` of the uid's permanent links."""
        rows = self.one(conn, self.q_permanent_links, {"b_owner_key": owner})
        return {service: pod for service, pod in rows}

    def set_linked_pod(
        self, conn: Connection, link: LinkId, pod: int, ttl: int | None, now: int
    ) -> int | None:
        """Read the row, then overwrite or insert it: one job (the write lock is held)."""
        return self.job(conn, self.set_pod_job(link, pod, ttl, now))

    def set_pod_job(self, link: LinkId, pod: int, ttl: int | None, now: int) -> Job[int | None]:
        """`set_linked_pod` as a job: read the row, overwrite or insert it; the previous pod."""
        params = self.link_params(link, pod, ttl, now)
        locked, insert, overwrite = self.q_link_locked, self.q_insert_link, self.q_update_link

        def set_pod(execute: Execute) -> int | None:
            rows = execute(locked, params).fetchall()
            if not rows:
                execute(insert, params)
                return None
            row = rows[0]
            execute(overwrite[overwrite_for(row, pod, ttl)], params)
            previous, live, _ = row
            return int(previous) if live else None

        return set_pod

    def use_writer(self, connect_args: Sequence[Any], connect_kwargs: dict[str, Any]) -> None:
        """Send the link writes to a connection of their own (`hot_set_linked_pod`...).

        It is opened with ``aiosqlite.connect(*connect_args, **connect_kwargs)``
        (`engines.sqlite_writer_params`) and `engines.SQLITE_ON_CONNECT`.
        """
        self.writer = SQLiteWriter(
            connect_args,
            connect_kwargs,
            SQLITE_ON_CONNECT,
            lock=lambda: writer_lock(self.database),
            track=self.workers.add,
        )

    async def hot_set_linked_pod(
        self, link: LinkId, pod: int, ttl: int | None, clock: Clock | None
    ) -> int | None:
        """`set_linked_pod` on the backend's own connection (`sqlite_writer.SQLiteWriter`)."""
        assert self.writer is not None and clock is not None
        return await self.writer.run(self.set_pod_job(link, pod, ttl, LATE), clock.now_ms)

    async def hot_upsert_link(
        self, statement: Insert, link: LinkId, pod: int, ttl: int | None, clock: Clock | None
    ) -> int:
        """One of the link upserts (`try_set_statement`, `if_absent_statement`), likewise."""
        assert self.writer is not None and clock is not None
        params = self.link_params(link, pod, ttl, LATE)
        rows = await self.writer.run(rows_of(self.q_upserts[statement], params), clock.now_ms)
        return stored_pod(rows)

    def upsert_link(
        self,
        conn: Connection,
        statement: Insert,
        link: LinkId,
        pod: int,
        ttl: int | None,
        now: int,
    ) -> int:
        """Run the upsert ``... RETURNING pod`` as one job."""
        prepared = self.q_upserts.get(statement)
        if prepared is None:
            return super().upsert_link(conn, statement, link, pod, ttl, now)
        return stored_pod(self.one(conn, prepared, self.link_params(link, pod, ttl, now)))

    def refresh_link(self, conn: Connection, link: LinkId, ttl: int | None, now: int) -> int | None:
        """``UPDATE ... WHERE live ... RETURNING pod`` as one job."""
        rows = self.one(conn, self.q_refresh, self.link_params(link, 0, ttl, now))
        return int(rows[0][0]) if rows else None

    def remove_linked_pod(
        self,
        conn: Connection,
        key: bytes,
        keep_ttl: int | None,
        pod: int | None,
        now: int,
    ) -> bool:
        """One DELETE (or UPDATE keeping the link) of the live (matching) link, as a job."""
        params: dict[str, Any] = {"b_link_key": key, "now": now, "b_pod": pod, "b_ttl": keep_ttl}
        prepared = self.q_remove[keep_ttl is not None, pod is not None]
        return bool(self.changed(conn, prepared, params))

    def get_service_state(self, conn: Connection, service_key: bytes, now: int) -> dict[int, str]:
        """``SELECT pod, state`` of the live pod states."""
        rows = self.one(conn, self.q_pod_states, {"b_service_key": service_key, "now": now})
        return {pod: state for pod, state in rows}

    def set_service_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """Upsert one pod state, as a job."""
        self.changed(conn, self.q_upsert_pod_state, row)

    def remove_service_state(
        self, conn: Connection, service_key: bytes, pod: int, now: int
    ) -> bool:
        """Delete a live pod state, as a job."""
        params = {"b_service_key": service_key, "b_pod": pod, "now": now}
        return bool(self.changed(conn, self.q_delete_pod_state, params))

    def pod_links_page(
        self, conn: Connection, service_key: bytes, pod: int, after: bytes, limit: int, now: int
    ) -> list[tuple[bytes, str]]:
        """One page of the pod's live links, as a job."""
        params = self.pod_page_params(service_key, pod, after, limit, now)
        return [(key, uid) for key, uid in self.one(conn, self.q_pod_page, params)]

    def count_pod_links(self, conn: Connection, service_key: bytes, now: int) -> dict[int, int]:
        """``SELECT pod, count(*) ... GROUP BY pod``, as a job."""
        rows = self.one(conn, self.q_count_links, {"b_service_key": service_key, "now": now})
        return {pod: count for pod, count in rows}

    def checkout(self, engine: Engine) -> Connection:
        """Open or reuse a connection; a file SQLite cannot open is named in the error."""
        try:
            return super().checkout(engine)
        except sa_exc.OperationalError as exc:
            if sqlite_code(exc) != SQLITE_CANTOPEN:
                raise
            path = self.database or ":memory:"
            folder = os.path.dirname(path)
            hint = (
                f"the directory {folder!r} does not exist"
                if folder and not os.path.isdir(folder)
                else "check that the file and its directory are readable and writable"
            )
            raise BackendUnavailable(
                f"cannot open the SQLite database file {path!r} "
                f"(from URL {self.engine.url.render_as_string(hide_password=True)!r}): {hint}"
            ) from exc

    async def settle(self) -> None:
        """Wait for the threads of connections the disposal only told to stop (`Workers`)."""
        await self.workers.stopped()

    def turn_for(self, *, write: bool) -> asyncio.Lock | None:
        """Writers to the same file take turns within the process; readers never wait."""
        if self.turn is not None:
            return self.turn
        return writer_lock(self.database) if write else None

    def insert_into(self, table: Table) -> Any:
        """SQLite's ``INSERT`` (``ON CONFLICT``, ``RETURNING`` since 3.35)."""
        return sqlite_insert(table)

    def lone_statement_ok(self, *, write: bool) -> bool:
        """Allow a lone SELECT (consistent by itself); writers always take the lock first."""
        return not write

    def managed_begin(self, conn: Connection, *, write: bool, single: bool) -> None:
        """``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads."""
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    # Transaction control goes straight to aiosqlite: one trip to its thread
    # each, where a statement through SQLAlchemy's cursor adapter takes three.

    def begin(self, conn: Connection, *, write: bool) -> None:
        """``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads."""
        await_(_driver(conn).execute("BEGIN IMMEDIATE" if write else "BEGIN"))

    def commit(self, conn: Connection) -> None:
        """``COMMIT``."""
        await_(_driver(conn).commit())

    def rollback(self, conn: Connection) -> None:
        """``ROLLBACK``."""
        await_(_driver(conn).rollback())

    def set_workload_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT (service_key) DO UPDATE SET state``, as a job."""
        self.changed(conn, self.q_upsert_workload, row)

    def purge_batch(self, conn: Connection, now: int) -> int:
        """``DELETE ... WHERE link_key IN (SELECT ... WHERE expires_at <= now LIMIT n)``."""
        return self.changed(conn, self.q_purge, {"now": now})
