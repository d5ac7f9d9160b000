"""The hot pool: PostgreSQL's lone link statements on asyncpg connections of their own.

A router calls `get_linked_pod` and `set_linked_pod` on every request. On
PostgreSQL each is one statement in autocommit, already compiled once and run
by asyncpg itself (`PostgreSQLDialect.run_raw`); what SQLAlchemy still added
per call was its pool's checkout and return and the greenlet the call ran in.
A backend that built its engine from a ``postgresql+asyncpg://`` URL
(`from_url`) therefore runs these statements on a second, smaller pool: plain
asyncpg connections opened with the engine's own connect arguments, handed
out and taken back without a task, a timer or a wrapper object per call.

Not asyncpg's ``Pool``: its acquire and release cost about as much as
SQLAlchemy's pool (release runs in a shielded task of its own, and each
side arms a timeout), and its acquire timeout also covers opening a
connection, so a slow connect would have to be told apart from a full pool.

The rules are those of the SQLAlchemy pool and `run_raw`:

* at most ``size`` connections; a call waits at most ``timeout`` seconds for
  one, then `stateful.PoolExhausted` (nothing was sent); the wait is marked
  (`stateful.backend.waiting_for_connection`), so an executor timeout there
  is `PoolExhausted` too, and a cancelled wait leaves nothing queued;
* opening a connection is bounded by asyncpg's ``timeout`` (connect
  arguments), each statement by its ``command_timeout``; a connect whose
  caller is cancelled finishes on its own and its connection joins the pool;
* a statement that fails with an error about itself (SQLSTATE class 22,
  23, 40, 42) leaves its connection in the pool; any other failure
  (connection lost, timeout, cancellation mid-statement) terminates the
  connection at once and is reported as `ConnectionError` (outcome unknown);
* nothing is ever left in a transaction: asyncpg connections are in
  autocommit unless told ``BEGIN``, and this pool only sends lone statements,
  so no reset runs on return;
* `aclose` closes politely, `terminate` drops every connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from stateful.backend import waiting_for_connection
from stateful.clock import Clock
from stateful.errors import PoolExhausted, StatefulError

from .errors import is_statement_error

if TYPE_CHECKING:
    from .dialects.postgresql import Prepared


class HotPool:
    """Up to ``size`` asyncpg connections, opened on demand, for lone autocommit statements.

    Construction does no I/O: the first call opens the first connection.
    """

    def __init__(self, connect_params: dict[str, Any], *, size: int, timeout: float) -> None:
        """Open connections with ``asyncpg.connect(**connect_params)``, at most ``size``.

        ``timeout``: seconds a call waits for a free connection.
        """
        if size < 1:
            raise ValueError("the hot pool needs at least one connection")
        self._params = dict(connect_params)
        self._size = size
        self._timeout = timeout
        #: Connections ready for a call, the most recently used last (LIFO:
        #: under light load the same few stay warm, the rest idle).
        self._idle: list[Any] = []
        #: Connections a call holds (or that were handed to a waiting call).
        self._busy: set[Any] = set()
        #: Connections open or being opened: the ones ``size`` bounds.
        self._count = 0
        #: Calls waiting for a connection; each future receives a connection,
        #: or None for a free slot (the call then opens a connection itself).
        self._waiters: deque[asyncio.Future[Any]] = deque()
        #: Connects under way (`_open`), each holding a counted slot.
        self._connecting: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: Set by `aclose` while it waits for held connections to come back.
        self._returned: asyncio.Event | None = None

    @property
    def size(self) -> int:
        """The most connections this pool opens."""
        return self._size

    @property
    def timeout(self) -> float:
        """Seconds a call waits for a free connection before `PoolExhausted`."""
        return self._timeout

    @property
    def connect_params(self) -> dict[str, Any]:
        """The keyword arguments of ``asyncpg.connect`` for a new connection (a copy)."""
        return dict(self._params)

    def idle_connections(self) -> list[Any]:
        """Return the asyncpg connections idle in the pool now (for tests and metrics)."""
        return list(self._idle)

    @property
    def in_use(self) -> int:
        """Connections that calls hold now."""
        return len(self._busy)

    @property
    def opened(self) -> int:
        """Connections open or being opened: idle, in use, or connecting (at most `size`)."""
        return self._count

    async def run(
        self, prepared: Prepared, params: dict[str, Any], fetch: str, clock: Clock | None
    ) -> Any:
        """Run ``prepared`` with asyncpg's ``fetch`` method (``fetchval``, ``fetchrow``).

        ``params`` are the bind parameters by name; with a ``clock``, its
        time is bound as ``now`` once the call holds its connection.
        """
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.is_closed():
            if conn is not None:
                # The server closed it while it was idle (restart, terminated
                # session): forget it before anything is sent on it.
                self._drop(conn)
            try:
                with waiting_for_connection():
                    conn = await self._acquire()
            except TimeoutError as exc:
                raise PoolExhausted(
                    "no connection of the PostgreSQL hot pool became free within "
                    f"{self._timeout} s; nothing was sent"
                ) from exc
        self._busy.add(conn)
        sql, names = prepared
        if clock is not None:
            params["now"] = clock.now_ms()
        try:
            result = await getattr(conn, fetch)(sql, *[params[n] for n in names])
        except BaseException as exc:
            if is_statement_error(exc) and not conn.is_closed():
                self._put_back(conn)
                raise
            # Connection lost, timeout, or interrupted mid-statement: asyncpg
            # may be half-way through the protocol, so drop the connection at
            # once (no goodbye) and never reuse it.
            self._drop(conn)
            if not isinstance(exc, Exception):
                raise
            raise ConnectionError(f"the PostgreSQL connection broke: {exc!r}") from exc
        self._put_back(conn)
        return result

    async def _acquire(self) -> Any:
        """Wait for a connection (none is idle): open one if a slot is free, else queue."""
        if self._closed:
            raise StatefulError("the SQL backend is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._drop(conn)
        if self._count < self._size:
            self._count += 1
            return await self._open()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a slot) just as the wait ended: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._put_back(handed)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        if handed is None:
            return await self._open()
        return handed

    async def _open(self) -> Any:
        """Open a connection for a slot already counted; the slot is freed if that fails.

        The connect runs in a task of its own, awaited shielded: a caller
        cancelled meanwhile (or timed out) leaves it to finish, bounded by the
        connect timeout, and the new connection then joins the pool. asyncpg's
        connect interrupted half-way leaves behind a future whose error
        nobody retrieves (asyncio logs it), and the connection would be lost.
        """
        task = asyncio.get_running_loop().create_task(
            self._connect(), name="stateful-postgresql-connect"
        )
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                # Not this call's cancellation: `terminate` stopped the connect.
                self._free_slot()
                raise StatefulError("the SQL backend is closed") from None
            if task.done():
                self._adopt(task)
            else:
                task.add_done_callback(self._adopt)
            raise
        except BaseException:
            self._free_slot()
            raise

    async def _connect(self) -> Any:
        """Open one connection, counted as held (`_busy`) until it is put back."""
        import asyncpg

        try:
            conn = await asyncpg.connect(**self._params)
        except TimeoutError as exc:
            # asyncpg's connect timeout: the server did not answer in time.
            # A TimeoutError here must not read as the pool's own wait.
            raise ConnectionError(
                f"could not connect to PostgreSQL within its connect timeout: {exc!r}"
            ) from exc
        if self._closed:
            conn.terminate()
            raise StatefulError("the SQL backend is closed")
        self._busy.add(conn)
        return conn

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        """Take in the outcome of a connect whose caller has gone: the pool keeps it."""
        if task.cancelled() or task.exception() is not None:
            self._free_slot()
        else:
            self._put_back(task.result())

    def _put_back(self, conn: Any) -> None:
        """Return a healthy connection: to the first waiting call, else to the idle list."""
        if self._closed or conn.is_closed():
            self._drop(conn)
            return
        # No reset (asyncpg's pool sends one query per release for it): only
        # lone statements run here, in autocommit, and an interrupted one
        # never comes back, so no transaction, cursor, LISTEN or SET can be
        # left on the connection.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                # Stays in ``_busy``: it goes straight to the waiting call.
                waiter.set_result(conn)
                return
        self._busy.discard(conn)
        self._idle.append(conn)

    def _drop(self, conn: Any) -> None:
        """Terminate a connection a call held and free its slot."""
        self._busy.discard(conn)
        conn.terminate()
        self._free_slot()

    def _free_slot(self) -> None:
        """Give a gone connection's slot to the first waiting call, else forget the slot."""
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._count -= 1
        if self._returned is not None and not self._busy and not self._connecting:
            self._returned.set()

    async def aclose(self) -> None:
        """Stop handing out connections; close every connection politely once it is returned.

        Waits for calls that hold a connection to return it; the caller
        bounds this (`SQLBackend.aclose`) and calls `terminate` when the
        bound runs out or it is cancelled.
        """
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(StatefulError("the SQL backend is closed"))
        while True:
            idle, self._idle = self._idle, []
            if idle:
                self._count -= len(idle)
                # Connection.close() drops the connection itself if interrupted.
                await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
            if not self._busy and not self._connecting:
                return
            # Returned (and newly opened) connections are dropped: `_put_back`
            # and `_connect` see the pool closed.
            self._returned = asyncio.Event()
            await self._returned.wait()

    def terminate(self) -> None:
        """Drop every connection at once, idle or held by a call (no goodbye to the server)."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(StatefulError("the SQL backend is closed"))
        for task in self._connecting:
            task.cancel()
        for conn in [*self._idle, *self._busy]:
            conn.terminate()
        self._count -= len(self._idle)
        self._idle.clear()
