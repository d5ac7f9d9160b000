"""`SQLBackend`: the contract over SQLAlchemy Core on an async engine.

Each operation is one transaction (see `dialects` for the statements per
database), run again when the database reports a serialization failure, a
deadlock or a concurrent insert of the same row, at most ``max_attempts``
times with a short randomised pause between attempts.

One clock per store (SPEC "Time"): without an explicit ``clock``,
PostgreSQL and MariaDB/MySQL statements read the database server's clock in
SQL (`Dialect.server_now`), so application servers whose clocks disagree
still agree on what is live; SQLite, embedded in the process, reads the
system clock. With an explicit ``clock`` (e.g. a `ManualClock`), ``now`` is
read in Python once per attempt and passed as a bound parameter, so every
database agrees with the memory backend. Either way deadlines are computed
in SQL from that one ``now`` (``now + ttl``). A link (or pod state) is live
iff ``expires_at`` is NULL or greater than ``now``; rows past their time are
ignored by every read and treated as absent by every write until
`purge_expired` deletes them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from stateful.backend import Backend, Cursor
from stateful.clock import Clock, SystemClock
from stateful.errors import StatefulError, ValidationError
from stateful.records import LinkInfo
from stateful.validation import PERMANENT

from . import errors, migration
from .dialects import Dialect, LinkId, dialect_for
from .dialects.postgresql import PostgreSQLDialect
from .dialects.sqlite import SQLiteDialect
from .dialects.sqlite_thread import THREAD
from .hot_pool import HotPool
from .keys import link_key, owner_key, service_key
from .schema import DEFAULT_TABLE_PREFIX, build_tables, check_table_prefix

logger = logging.getLogger("stateful.sql")

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 12
DEFAULT_PURGE_BATCH_SIZE = 1000

#: Seconds `SQLBackend.aclose` lets idle connections close politely before it
#: drops the rest (a stalled server never acknowledges a goodbye).
CLOSE_GRACE = 2.0


def _backoff(attempt: int) -> float:
    # Full jitter, 2 ms doubling up to 100 ms: contenders spread out quickly.
    return random.uniform(0, min(0.1, 0.002 * 2**attempt))


class SQLBackend(Backend):
    """Stores routing state in SQLite, PostgreSQL or MariaDB/MySQL tables.

    Build it with `from_url` (it then owns its engine) or directly from an
    `AsyncEngine` the application already has (which `aclose` leaves open).
    Construction does no I/O. The first operation checks the schema once:
    SQLite migrates itself; other databases raise `stateful.SchemaError`
    unless ``stateful migrate URL`` has been run.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        purge_interval: float | None = None,
        purge_batch_size: int = DEFAULT_PURGE_BATCH_SIZE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        dispose_engine: bool = False,
        hot_pool: HotPool | None = None,
        sqlite_writer: tuple[Sequence[Any], dict[str, Any]] | None = None,
    ) -> None:
        """Serve the tables named with ``table_prefix`` through ``engine``.

        ``purge_interval`` (seconds) starts a background task that deletes
        expired links that often (off by default); ``purge_batch_size`` bounds
        the rows one purge statement deletes; ``max_attempts`` bounds retries
        of a transaction; ``dispose_engine`` makes `aclose` dispose ``engine``.
        ``hot_pool`` (PostgreSQL on asyncpg only; `from_url` passes it for the
        engines it builds) runs the lone link statements on connections of
        its own (`hot_pool.HotPool`), which `aclose` closes.
        ``sqlite_writer`` (SQLite through aiosqlite only; `from_url` passes it
        likewise): the ``aiosqlite.connect`` arguments of a connection of the
        backend's own for the link writes (`sqlite_writer.SQLiteWriter`).
        """
        try:
            check_table_prefix(table_prefix)
        except ValueError as exc:
            raise ValidationError("table_prefix", str(exc)) from None
        if purge_interval is not None and not purge_interval > 0:
            raise ValidationError("purge_interval", "must be a positive number of seconds or None")
        if (
            isinstance(purge_batch_size, bool)
            or not isinstance(purge_batch_size, int)
            or (purge_batch_size < 1)
        ):
            raise ValidationError("purge_batch_size", "must be a positive int")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValidationError("max_attempts", "must be a positive int")
        self._engine = engine
        # No clock given: the server's (PostgreSQL, MariaDB), the system's (SQLite).
        server_clock = clock is None and engine.dialect.name != "sqlite"
        self._clock: Clock | None = None if server_clock else (clock or SystemClock())
        self._prefix = table_prefix
        self._tables = build_tables(table_prefix)
        try:
            self._dialect = dialect_for(
                engine, self._tables, purge_batch_size=purge_batch_size, server_clock=server_clock
            )
        except ValueError as exc:
            raise ValidationError("engine", str(exc)) from None
        # The dialect's lone statements that the executor may await directly.
        self.cancel_safe_operations = self._dialect.cancel_safe_operations
        # The dialect whose hot statements run on the hot pool, if there is one,
        # and the one whose link writes run outside the engine's pool.
        self._hot: PostgreSQLDialect | None = None
        self._hot_writes: PostgreSQLDialect | SQLiteDialect | None = None
        if hot_pool is not None:
            if not isinstance(self._dialect, PostgreSQLDialect) or self._dialect.raw_get is None:
                raise ValidationError("hot_pool", "only for PostgreSQL through asyncpg")
            self._dialect.hot_pool = hot_pool
            self._hot = self._hot_writes = self._dialect
        if sqlite_writer is not None:
            if not isinstance(self._dialect, SQLiteDialect) or not THREAD:
                raise ValidationError("sqlite_writer", "only for SQLite through aiosqlite")
            self._dialect.use_writer(*sqlite_writer)
            self._hot_writes = self._dialect
        self._purge_interval = purge_interval
        self._max_attempts = max_attempts
        self._dispose_engine = dispose_engine
        self._schema_checked = False
        self._schema_lock = asyncio.Lock()
        self._purge_task: asyncio.Task[None] | None = None
        self._closed = False
        # Schema checked and purge started: calls skip `_ready` (cleared on close).
        self._is_ready = False
        self._retries = 0

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        clock = "server" if self._clock is None else repr(self._clock)
        return f"SQLBackend({url!r}, table_prefix={self._prefix!r}, clock={clock})"

    @property
    def engine(self) -> AsyncEngine:
        """The engine this backend runs on."""
        return self._engine

    @property
    def dialect(self) -> Dialect:
        """The statements this backend issues (per database family)."""
        return self._dialect

    @property
    def hot_pool(self) -> HotPool | None:
        """The pool of the lone link statements, if they run outside the engine's pool."""
        return None if self._hot is None else self._hot.hot_pool

    @property
    def retries(self) -> int:
        """How many transactions this backend has run again (deadlocks, conflicts...)."""
        return self._retries

    @property
    def table_prefix(self) -> str:
        """The prefix of this backend's table names."""
        return self._prefix

    def is_unavailable(self, error: BaseException) -> bool:
        """Count connection failures, lost connections and timeouts (outcome unknown)."""
        return errors.is_unavailable(error)

    # -- plumbing ------------------------------------------------------------------------

    async def _ready(self) -> None:
        if self._closed:
            raise StatefulError("the SQL backend is closed")
        if not self._schema_checked:
            async with self._schema_lock:
                if not self._schema_checked:
                    url = self._engine.url.render_as_string(hide_password=True)
                    await self._with_retries(
                        lambda: migration.check_schema(self._dialect, self._prefix, url)
                    )
                    self._schema_checked = True
        if self._purge_interval is not None and self._purge_task is None:
            self._purge_task = asyncio.get_running_loop().create_task(
                self._purge_periodically(self._purge_interval), name="stateful-sql-purge"
            )
        self._is_ready = not self._closed

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]]) -> T:
        tries = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                tries += 1
                if tries >= self._max_attempts or not errors.is_retryable(exc):
                    raise
                self._retries += 1
                logger.debug("stateful: retrying a transaction after %r", exc)
            await asyncio.sleep(_backoff(tries - 1))

    async def _run(
        self,
        operation: str,
        body: Callable[[Connection, int], T],
        *,
        write: bool,
        single: bool | None = None,
    ) -> T:
        """Run ``body(connection, now_ms)`` as one transaction, retrying if needed.

        ``body`` is synchronous: `Dialect.run` runs the whole transaction in
        one greenlet.
        """
        if not self._is_ready:
            await self._ready()
        if single is None:
            single = self._dialect.is_single(operation)

        clock = self._clock
        if clock is not None and operation in self._dialect.late_clock:
            late = clock
            return await self._with_retries(
                lambda: self._dialect.run_timed(body, late, write=write, single=single)
            )

        def timed(conn: Connection) -> T:
            # Read the clock once the transaction has its connection (and, on
            # SQLite, the write lock), so time follows the order of commits.
            # On the server's clock the statements read it themselves (0 unused).
            return body(conn, clock.now_ms() if clock is not None else 0)

        return await self._with_retries(
            lambda: self._dialect.run(timed, write=write, single=single)
        )

    async def _run_hot(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``, a statement on the hot pool, retrying if needed."""
        if not self._is_ready:
            await self._ready()
        return await self._with_retries(attempt)

    @staticmethod
    def _link(namespace: str, uid: str, service_name: str) -> LinkId:
        return LinkId(
            link_key(namespace, uid, service_name),
            owner_key(namespace, uid),
            service_key(namespace, service_name),
            namespace,
            uid,
            service_name,
        )

    @staticmethod
    def _ttl(persist_seconds: int) -> int | None:
        """Lifetime in ms of a link set with ``persist_seconds`` (None: permanent)."""
        return None if persist_seconds == PERMANENT else persist_seconds * 1000

    @staticmethod
    def _keep_ttl(persist_seconds: int) -> int | None:
        """Lifetime in ms a removal keeps the link for (None: delete it)."""
        return persist_seconds * 1000 if persist_seconds > 0 else None

    # -- pod and workload states -------------------------------------------------------

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite the state of one pod of a service, with a TTL or not (one upsert)."""
        row = {
            "b_service_key": service_key(namespace, service_name),
            "b_pod": pod_id,
            "b_namespace": namespace,
            "b_service": service_name,
            "b_state": state,
            "b_ttl": None if ttl_seconds is None else ttl_seconds * 1000,
        }

        def body(conn: Connection, now: int) -> None:
            self._dialect.set_service_state(conn, {**row, "now": now})

        await self._run("set_service_state", body, write=True)

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every live pod state of a service (one SELECT)."""
        key = service_key(namespace, service_name)

        def body(conn: Connection, now: int) -> dict[int, str]:
            return self._dialect.get_service_state(conn, key, now)

        return await self._run("get_service_state", body, write=False)

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state; True if it was live (one DELETE)."""
        key = service_key(namespace, service_name)

        def body(conn: Connection, now: int) -> bool:
            return self._dialect.remove_service_state(conn, key, pod_id, now)

        return await self._run("remove_service_state", body, write=True)

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite the workload state of a service (one upsert)."""
        row = {
            "b_service_key": service_key(namespace, service_name),
            "b_namespace": namespace,
            "b_service": service_name,
            "b_state": state,
        }

        def body(conn: Connection, now: int) -> None:
            self._dialect.set_workload_state(conn, row)

        await self._run("set_workload_state", body, write=True)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""
        names = {service_key(namespace, name): name for name in service_names}
        keys = list(names)

        def body(conn: Connection, now: int) -> dict[bytes, str]:
            return self._dialect.get_workload_state(conn, keys)

        found = await self._run(
            "get_workload_state",
            body,
            write=False,
            single=self._dialect.single_batch(len(keys)),
        )
        return {name: found[key] for key, name in names.items() if key in found}

    # -- links -----------------------------------------------------------------------------

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link the uid to ``pod_id``; return the previous live pod."""
        link = self._link(namespace, uid, service_name)
        ttl = self._ttl(persist_seconds)
        hot = self._hot_writes
        if hot is not None:
            clock = self._clock
            return await self._run_hot(lambda: hot.hot_set_linked_pod(link, pod_id, ttl, clock))

        def body(conn: Connection, now: int) -> int | None:
            return self._dialect.set_linked_pod(conn, link, pod_id, ttl, now)

        return await self._run("set_linked_pod", body, write=True)

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        link = self._link(namespace, uid, service_name)
        ttl = self._ttl(persist_seconds)
        hot = self._hot_writes
        if hot is not None:
            statement, clock = hot.try_set_statement, self._clock
            linked = await self._run_hot(
                lambda: hot.hot_upsert_link(statement, link, pod_id, ttl, clock)
            )
            return linked == pod_id, linked

        def body(conn: Connection, now: int) -> tuple[bool, int]:
            return self._dialect.try_set_linked_pod(conn, link, pod_id, ttl, now)

        return await self._run("try_set_linked_pod", body, write=True)

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing a temporary link) or create the link; return its pod."""
        link = self._link(namespace, uid, service_name)
        ttl = self._ttl(persist_seconds)
        hot = self._hot_writes
        if hot is not None:
            statement, clock = hot.if_absent_statement, self._clock
            return await self._run_hot(
                lambda: hot.hot_upsert_link(statement, link, pod_id, ttl, clock)
            )

        def body(conn: Connection, now: int) -> int:
            return self._dialect.set_linked_pod_if_absent(conn, link, pod_id, ttl, now)

        return await self._run("set_linked_pod_if_absent", body, write=True)

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod."""
        key = link_key(namespace, uid, service_name)
        hot = self._hot
        if hot is not None:
            clock = self._clock
            return await self._run_hot(lambda: hot.hot_get_linked_pod(key, clock))

        def body(conn: Connection, now: int) -> int | None:
            return self._dialect.get_linked_pod(conn, key, now)

        return await self._run("get_linked_pod", body, write=False)

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the live link's pod if the link is permanent."""
        key = link_key(namespace, uid, service_name)

        def body(conn: Connection, now: int) -> int | None:
            return self._dialect.get_linked_pod_if_persist(conn, key)

        return await self._run("get_linked_pod_if_persist", body, write=False)

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the uids that have a live link by pod, each list in input order."""
        keys = [link_key(namespace, uid, service_name) for uid in uids]

        def body(conn: Connection, now: int) -> dict[bytes, int]:
            return self._dialect.batch_get_linked_pod(conn, keys, now)

        found = await self._run(
            "batch_get_linked_pod",
            body,
            write=False,
            single=self._dialect.single_batch(len(keys)),
        )
        grouped: dict[int, list[str]] = {}
        for key, uid in zip(keys, uids, strict=True):
            pod = found.get(key)
            if pod is not None:
                grouped.setdefault(pod, []).append(uid)
        return grouped

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link, or keep it N seconds as temporary (one statement)."""
        return await self._remove(namespace, uid, service_name, persist_seconds, None)

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """As `remove_linked_pod`, only if the live link points at ``pod_id``."""
        return await self._remove(namespace, uid, service_name, persist_seconds, pod_id)

    async def _remove(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod: int | None
    ) -> bool:
        key = link_key(namespace, uid, service_name)
        keep_ttl = self._keep_ttl(persist_seconds)

        def body(conn: Connection, now: int) -> bool:
            return self._dialect.remove_linked_pod(conn, key, keep_ttl, pod, now)

        return await self._run("remove_linked_pod", body, write=True)

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's permanent links, service → pod (one SELECT)."""
        owner = owner_key(namespace, uid)

        def body(conn: Connection, now: int) -> dict[str, int]:
            return self._dialect.get_link_service(conn, owner)

        return await self._run("get_link_service", body, write=False)

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update (one SELECT)."""
        key = link_key(namespace, uid, service_name)

        def body(conn: Connection, now: int) -> Any:
            return self._dialect.get_link_info(conn, key, now)

        row = await self._run("get_link_info", body, write=False)
        if row is None:
            return None
        return LinkInfo(namespace, uid, service_name, row.pod, row.expires_at, row.updated_at)

    async def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        pod_id: int | None,
    ) -> int | None:
        """Keep (refreshing) the live link, else link to ``pod_id``; one atomic statement.

        With a pod it is the upsert of `set_linked_pod_if_absent`; without
        one, an ``UPDATE`` of a live link (PostgreSQL, SQLite: with
        ``RETURNING``; MariaDB: after a locking read).
        """
        link = self._link(namespace, uid, service_name)
        ttl = self._ttl(persist_seconds)
        hot = self._hot_writes
        if hot is not None and pod_id is not None:
            # With a pod it is the upsert of set_linked_pod_if_absent.
            statement, clock, pod = hot.if_absent_statement, self._clock, pod_id
            return await self._run_hot(
                lambda: hot.hot_upsert_link(statement, link, pod, ttl, clock)
            )

        def body(conn: Connection, now: int) -> int | None:
            return self._dialect.place_linked_pod(conn, link, pod_id, ttl, now)

        return await self._run("place_linked_pod", body, write=True)

    # -- pods ------------------------------------------------------------------------------

    @staticmethod
    def _after(cursor: Cursor) -> bytes:
        # A cursor is the hex of the last link key returned: keys are walked in
        # byte order, and b"" sorts before every key.
        if cursor is None:
            return b""
        try:
            after = bytes.fromhex(cursor)
        except (TypeError, ValueError):
            raise ValidationError(
                "cursor", f"not a cursor of the SQL backend: {cursor!r}"
            ) from None
        return after

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Return up to ``limit`` uids of the pod's live links after ``after`` (one SELECT).

        Walks the index ``(service_key, pod, link_key)`` in key order; each
        page is one statement, hence one snapshot.
        """
        key = service_key(namespace, service_name)
        start = self._after(after)

        def body(conn: Connection, now: int) -> list[tuple[bytes, str]]:
            return self._dialect.pod_links_page(conn, key, pod_id, start, limit, now)

        rows = await self._run("pod_links_page", body, write=False)
        cursor = rows[-1][0].hex() if len(rows) == limit else None
        return [uid for _, uid in rows], cursor

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod of the service (one ``GROUP BY`` over the pod index)."""
        key = service_key(namespace, service_name)

        def body(conn: Connection, now: int) -> dict[int, int]:
            return self._dialect.count_pod_links(conn, key, now)

        return await self._run("count_pod_links", body, write=False)

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        """Remove a page of the pod's links in one transaction of two statements.

        Each link is removed as `remove_linked_pod_with_id` would: the write
        re-checks that it is live and still on ``pod_id``.
        """
        key = service_key(namespace, service_name)
        start = self._after(after)
        keep_ttl = self._keep_ttl(persist_seconds)

        def body(conn: Connection, now: int) -> tuple[int, bytes | None]:
            return self._dialect.remove_pod_links_page(
                conn, key, pod_id, keep_ttl, start, limit, now
            )

        removed, last = await self._run("remove_pod_links_page", body, write=True)
        return removed, None if last is None else last.hex()

    # -- purging and lifecycle ------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete the links that have expired; return how many.

        Works in batches of ``purge_batch_size`` rows, one transaction each,
        so no lock is held for long; stops at the first batch that is not full.
        """
        total = 0
        batch = self._dialect.purge_batch_size

        def body(conn: Connection, now: int) -> int:
            return self._dialect.purge_batch(conn, now)

        def states(conn: Connection, now: int) -> int:
            return int(conn.execute(self._dialect.purge_states, {"now": now}).rowcount)

        while True:
            deleted = await self._run("purge", body, write=True)
            total += deleted
            if deleted < batch:
                break
        # Expired pod states: one per pod at most, so one statement.
        await self._run("purge", states, write=True)
        return total

    async def _purge_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = await self.purge_expired()
            except Exception:
                logger.warning("stateful: background purge of expired links failed", exc_info=True)
            else:
                logger.debug("stateful: purged %d expired links", deleted)

    async def aclose(self) -> None:
        """Stop the purge task; dispose the engine if this backend created it.

        Idle connections get `CLOSE_GRACE` seconds to close politely; past
        that, or as soon as this is cancelled (the executor bounds it), every
        connection still in the pool is dropped at once (socket closed, no
        goodbye), so a stalled server cannot hold the close. The hot pool
        closes alongside, in the same bound: its connections still held by
        calls get the rest of the grace to come back, then are dropped too;
        so does SQLite's writer connection, once its queued writes are done.
        """
        if self._closed:
            return
        self._closed = True
        self._is_ready = False
        task, self._purge_task = self._purge_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        hot = self.hot_pool
        writer = self._dialect.writer if isinstance(self._dialect, SQLiteDialect) else None
        if not self._dispose_engine and hot is None and writer is None:
            return
        pool = self._engine.sync_engine.pool
        closes = [own.aclose() for own in (hot, writer) if own is not None]
        if self._dispose_engine:
            closes.append(self._dispose())

        def drop() -> None:
            if self._dispose_engine:
                _drop_idle_connections(pool)
            for own in (hot, writer):
                if own is not None:
                    own.terminate()

        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await asyncio.gather(*closes)
        except TimeoutError:
            logger.warning("stateful: SQL connections did not close in %s s; dropped", CLOSE_GRACE)
            drop()
        except BaseException:
            drop()
            raise

    async def _dispose(self) -> None:
        await self._engine.dispose()
        await self._dialect.settle()


def _drop_idle_connections(pool: Any) -> None:
    """Close the sockets of the connections idle in ``pool`` without a word to the server."""
    queue = getattr(getattr(pool, "_pool", None), "queue", None)
    if queue is None:  # a pool without idle connections to drop (NullPool, StaticPool...)
        return
    while queue:
        record = queue.pop()
        connection = getattr(record, "dbapi_connection", None)
        if connection is None:
            continue
        try:
            # Outside a greenlet, SQLAlchemy's adapters close the socket at once.
            pool._dialect.do_terminate(connection)
        except Exception:  # dropping what is left: one failure must not stop it
            logger.debug("stateful: dropping a SQL connection failed", exc_info=True)


def from_url(url: str, *, clock: Clock | None = None, **options: Any) -> SQLBackend:
    """Build a `SQLBackend` (owning its engine) from a SQLAlchemy URL.

    Options: ``table_prefix``, ``purge_interval``, ``purge_batch_size``,
    ``max_attempts``; any other keyword goes to
    `sqlalchemy.ext.asyncio.create_async_engine` (``pool_size``, ``echo``,
    ``connect_args``...). On ``postgresql+asyncpg`` the backend also gets a
    hot pool for its lone link statements, of ``pool_size`` connections
    opened like the engine's (`engines.hot_connect_params`, docs/sql.md).
    """
    from sqlalchemy.pool import QueuePool

    from .engines import create_engine, hot_connect_params, sqlite_writer_params

    backend_options = {
        name: options.pop(name)
        for name in ("table_prefix", "purge_interval", "purge_batch_size", "max_attempts")
        if name in options
    }
    engine = create_engine(url, **options)
    params = hot_connect_params(engine, options)
    hot = None
    if params is not None:
        queue = engine.sync_engine.pool
        assert isinstance(queue, QueuePool)
        hot = HotPool(params, size=queue.size(), timeout=queue.timeout())
    writer = sqlite_writer_params(engine, options) if THREAD else None
    return SQLBackend(
        engine,
        clock=clock,
        dispose_engine=True,
        hot_pool=hot,
        sqlite_writer=writer,
        **backend_options,
    )
