"""One trip to aiosqlite's thread per SQLite operation.

aiosqlite runs every call on its sqlite3 connection in a worker thread, and
each call is a hop there and back (a queue, a thread wake-up, then a wake-up
of the event loop), which on a local database costs more than the statement
itself. SQLAlchemy's adapter makes several hops per statement (cursor,
execute, fetch, close). Here an operation is a plain function of the
statements it runs (a `Job`), and `run_job` runs it whole in that thread,
with the COMMIT when it ends the transaction (or the ROLLBACK after any
error): one hop for the lot.

A job that started in the thread runs to its end there, whatever happens to
the task that awaits it (cancelled, timed out): the transaction is committed
or rolled back, never left half-way, and later calls on the connection queue
behind it.

This relies on two private names of aiosqlite's `Connection`: ``_execute(fn)``
(run ``fn`` in the connection's thread) and ``_conn`` (its sqlite3
connection), as in aiosqlite 0.20 to 0.22. Where they are missing, `THREAD` is
False and jobs run through SQLAlchemy's connection, one statement at a time.
`Workers`, `is_open` and `set_daemon` read three more (``_thread``,
``_running``, ``_connection``) and do nothing without them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import Dialect as SADialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from ..errors import sqlite_disconnect

T = TypeVar("T")

#: Whether this aiosqlite runs a function of ours in its thread (see the module docstring).
THREAD = callable(getattr(aiosqlite.Connection, "_execute", None)) and isinstance(
    getattr(aiosqlite.Connection, "_conn", None), property
)


class Workers:
    """aiosqlite's worker threads of an engine's connections, so a close can wait for them.

    A connection SQLAlchemy terminates (its graceful close was cancelled, or
    it was invalidated), and one whose connect failed, is only told to stop:
    its thread first finishes the jobs queued on it, then hands its last
    result to the event loop. If the loop is closed by then, the thread fails
    ("Event loop is closed"). `stopped` waits for those threads;
    `SQLBackend.aclose` bounds the wait. The engine's connections are created
    here (SQLAlchemy's ``async_creator_fn``, set per connect unless the
    application gave its own), so even one whose connect fails is known.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Note every connection ``engine`` opens from now on."""
        self._connections: list[aiosqlite.Connection] = []
        event.listen(engine.sync_engine, "do_connect", self._connecting)

    def _connecting(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.setdefault("async_creator_fn", self._create)

    def _create(self, *args: Any, **kwargs: Any) -> aiosqlite.Connection:
        # What SQLAlchemy's adapter does without a creator, plus `add`.
        connection = aiosqlite.connect(*args, **kwargs)
        set_daemon(connection)
        self.add(connection)
        return connection

    def add(self, connection: aiosqlite.Connection) -> None:
        """Note a connection (started or not) whose thread a close should wait for if stopped."""
        if _thread_of(connection) is not None:
            # Forget the connections whose thread has ended: the list stays
            # as long as the number of live connections.
            self._connections = [c for c in self._connections if not _ended(c)]
            self._connections.append(connection)

    async def stopped(self) -> None:
        """Return once no connection told to stop still has a running thread."""
        # Polled: a thread's end signals nothing the loop could await, and
        # joining it from another thread would outlive a cancelled close.
        while any(_stopping(c) for c in self._connections):  # noqa: ASYNC110
            await asyncio.sleep(0.002)


def _thread_of(connection: aiosqlite.Connection) -> threading.Thread | None:
    thread = getattr(connection, "_thread", None)
    return thread if isinstance(thread, threading.Thread) else None


def _ended(connection: aiosqlite.Connection) -> bool:
    thread = _thread_of(connection)
    return thread is not None and thread.ident is not None and not thread.is_alive()


def _stopping(connection: aiosqlite.Connection) -> bool:
    thread = _thread_of(connection)
    alive = thread is not None and thread.is_alive()
    return alive and getattr(connection, "_running", True) is False


def is_open(connection: aiosqlite.Connection) -> bool:
    """Tell whether ``connection`` still takes jobs (neither closed nor told to stop)."""
    running = getattr(connection, "_running", True) is not False
    return running and getattr(connection, "_connection", None) is not None


def set_daemon(connection: aiosqlite.Connection) -> None:
    """Make the thread of a connection not yet started a daemon, as SQLAlchemy does.

    A thread that never holds the interpreter open at exit.
    """
    thread = _thread_of(connection)
    if thread is not None:
        thread.daemon = True


class Prepared(NamedTuple):
    """A statement compiled once for sqlite3: its SQL and where its values come from."""

    sql: str
    #: Bind parameter names in the order of the ``?`` marks (a name may repeat).
    names: tuple[str, ...]
    #: Values SQLAlchemy bound itself (a literal LIMIT, OFFSET 0...).
    constants: Mapping[str, Any]
    #: Parameters that bind a list (``IN (...)``): one ``?`` per item.
    lists: tuple[str, ...]

    @classmethod
    def compile(cls, statement: Any, dialect: SADialect) -> Prepared:
        """Compile ``statement`` (a Core construct) for ``dialect`` (qmark style)."""
        compiled = statement.compile(dialect=dialect)
        constants = {name: v for name, v in compiled.params.items() if v is not None}
        lists = tuple(name for name, bind in compiled.binds.items() if bind.expanding)
        return cls(compiled.string, tuple(compiled.positiontup or ()), constants, lists)

    def render(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """Return the SQL and the values of its ``?`` marks, in order, from ``params``."""
        if self.constants:
            params = {**self.constants, **params}
        if not self.lists:
            return self.sql, [params[name] for name in self.names]
        values: list[Any] = []
        for name in self.names:
            if name in self.lists:
                values.extend(params[name])
            else:
                values.append(params[name])
        sizes = tuple((name, len(params[name])) for name in self.lists)
        return _expand(self.sql, sizes), values


@lru_cache(maxsize=1024)
def _expand(sql: str, sizes: tuple[tuple[str, int], ...]) -> str:
    # SQLAlchemy leaves a placeholder for each list parameter, to be expanded per call.
    for name, size in sizes:
        sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * size))
    return sql


class Rows(Protocol):
    """What a job reads from an executed statement (sqlite3 cursor or SQLAlchemy result)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE."""

    def fetchall(self) -> Sequence[Any]:
        """Every row (tuples), which also finishes the statement."""


#: Runs one prepared statement with named parameters.
Execute = Callable[[Prepared, Mapping[str, Any]], Rows]

#: An operation: its statements and the decisions between them, nothing else
#: (it may run in aiosqlite's thread, so it touches no event loop state).
Job = Callable[[Execute], T]


class Abandoned(Exception):
    """A write whose caller was gone once it held the lock: rolled back, not run."""


class _Late:
    """The stand-in `LATE` for a ``now`` the job reads in the thread (not a value)."""

    def __repr__(self) -> str:
        return "LATE"


#: What a write operation gets as ``now`` when the job reads the clock itself
#: (`run_job` with ``now``): it replaces every ``now`` parameter. Not an
#: int, so any other use fails loudly instead of writing a wrong time.
LATE: int = cast(int, _Late())


def run_job(
    conn: Connection,
    job: Job[T],
    *,
    commit: bool,
    now: Callable[[], int] | None = None,
) -> T:
    """Run ``job`` on ``conn`` in one trip to aiosqlite's thread (call in `Dialect.run`'s greenlet).

    ``commit``: the job ends the transaction that is open on ``conn``:
    COMMIT after it, or ROLLBACK if it (or the COMMIT) fails, in the same
    trip. Without `THREAD`, the statements go through ``conn`` and ``commit``
    is left to the caller.

    ``now`` (needs `THREAD`): the job is a whole write transaction. In the
    same trip: ``BEGIN IMMEDIATE``, then ``now()`` read once the write lock
    is held (so time follows the order of commits), bound as every statement's
    ``now`` parameter (given as `LATE`), then the job and its COMMIT. If the
    awaiting task is gone (cancelled, timed out) by the time the lock is
    held, the job does not run: ROLLBACK, nothing written.
    """
    if not THREAD:

        def through_sqlalchemy(prepared: Prepared, params: Mapping[str, Any]) -> Rows:
            sql, values = prepared.render(params)
            return conn.exec_driver_sql(sql, tuple(values))

        return job(through_sqlalchemy)

    driver = conn.connection.driver_connection
    assert isinstance(driver, aiosqlite.Connection), "the SQLite backend needs aiosqlite"
    trip = Trip(driver, job, commit=commit, now=now)
    try:
        return await_(trip.run())
    except Exception as exc:
        # SQLAlchemy would have discarded a closed connection: do as it does.
        if sqlite_disconnect(exc):
            conn.invalidate(exc)
        raise


class Trip(Generic[T]):
    """One job, and its transaction control, as one call in ``driver``'s thread (`run_job`)."""

    def __init__(
        self,
        driver: aiosqlite.Connection,
        job: Job[T],
        *,
        commit: bool,
        now: Callable[[], int] | None,
    ) -> None:
        """See `run_job` for ``commit`` and ``now``."""
        self.driver = driver
        self.job = job
        self.commit = commit
        self.now = now
        #: The awaiting task left (cancelled, timed out): a write still
        #: waiting for the lock gives up.
        self.gone = False

    async def run(self) -> T:
        """Send the trip to the thread and await its result."""
        in_thread: Callable[[Callable[[], T]], Awaitable[T]] = self.driver._execute
        try:
            return await in_thread(self._whole)
        except BaseException:
            self.gone = True
            raise

    def _whole(self) -> T:
        db: sqlite3.Connection = self.driver._conn
        job, now = self.job, self.now
        execute: Execute
        if now is None:

            def execute(prepared: Prepared, params: Mapping[str, Any]) -> Rows:
                return db.execute(*prepared.render(params))

            if not self.commit:
                return job(execute)
        else:
            db.execute("BEGIN IMMEDIATE")  # waits at the busy timeout; nothing open if it fails
            if self.gone:
                db.rollback()
                raise Abandoned("the write was abandoned while it waited for the lock")
            at = now()

            def execute(prepared: Prepared, params: Mapping[str, Any]) -> Rows:
                if "now" in params:
                    params = {**params, "now": at}
                return db.execute(*prepared.render(params))

        try:
            result = job(execute)
            db.commit()
        except BaseException:
            # The error is what the caller needs; a failed ROLLBACK leaves the
            # transaction open, and the caller's own rollback then discards
            # the connection (`Dialect.abort`).
            with suppress(sqlite3.Error):
                db.rollback()
            raise
        return result

