"""PostgreSQL: single statements in autocommit where one suffices, row locks otherwise.

* Upserts (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``) make
  `try_set_linked_pod`, `set_linked_pod_if_absent` and the state setters one
  statement each. ``ON CONFLICT`` locks the existing row and evaluates the
  ``SET`` clause on its latest version, so the decision is atomic even under
  READ COMMITTED.
* Removals are one ``UPDATE``/``DELETE`` whose ``WHERE`` re-checks liveness
  on the latest row version (PostgreSQL re-evaluates it after waiting for a
  concurrent writer).
* Batch reads bind one array: ``link_key = ANY($1)``, one statement whatever
  the number of uids.
* `set_linked_pod` must report the previous pod, which ``RETURNING`` cannot
  show before PostgreSQL 18. One statement does it with data-modifying CTEs:
  ``old`` locks the row (``SELECT ... FOR UPDATE``, which returns its latest
  committed version), ``upd`` updates it ``FROM old`` and returns the old
  pod, ``ins`` inserts the row when ``old`` found none (``ON CONFLICT DO
  NOTHING``). If a concurrent transaction inserted the row after this
  statement's snapshot, neither writes, the statement reports it, and it is
  run again: nothing was written, so running it again is safe.

A lone statement runs in autocommit: it is its own transaction, which saves
the ``BEGIN`` and ``COMMIT`` round trips. On an engine the application
passed in, that takes an ``AUTOCOMMIT`` checkout of its pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Insert,
    Integer,
    LargeBinary,
    String,
    Table,
    TextClause,
    any_,
    bindparam,
    delete,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from stateful.clock import Clock

from ..errors import RetryTransaction, is_statement_error
from ..schema import Tables
from .base import LinkId
from .on_conflict import OnConflictDialect

if TYPE_CHECKING:
    from ..hot_pool import HotPool

#: A statement compiled for asyncpg: SQL text, parameter names in ``$n`` order.
Prepared = tuple[str, list[str]]

_NOW_SQL = "(SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT))"


class PostgreSQLDialect(OnConflictDialect):
    """PostgreSQL 12+ through asyncpg (or another SQLAlchemy async driver)."""

    batch_size = None  # the keys travel as one array, in one statement

    single_statement: ClassVar[frozenset[str]] = OnConflictDialect.single_statement | {
        "set_linked_pod"
    }

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the PostgreSQL statements on top of the portable ones."""
        super().__init__(
            engine, tables, purge_batch_size=purge_batch_size, server_clock=server_clock
        )
        self.autocommit_engine = self.sync_engine.execution_options(isolation_level="AUTOCOMMIT")
        links = tables.links
        c = links.c
        self.insert_link_if_absent = (
            pg_insert(links)
            .values(**self.link_values)
            .on_conflict_do_nothing(index_elements=[c.link_key])
            .returning(c.pod)
        )
        keys = bindparam("keys", type_=ARRAY(LargeBinary))
        self.select_live_batch = select(c.link_key, c.pod).where(
            c.link_key == any_(keys), self.live
        )
        workloads = tables.workload_states
        self.select_workloads = select(workloads.c.service_key, workloads.c.state).where(
            workloads.c.service_key == any_(keys)
        )
        # SKIP LOCKED: never wait for rows an operation is changing; the outer
        # condition is re-checked on the row version deleted.
        expired = (
            select(c.link_key)
            .where(c.expires_at <= self.now)
            .limit(purge_batch_size)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        self.purge = delete(links).where(c.link_key.in_(expired), c.expires_at <= self.now)
        self.set_link_statement = self._set_link_statement(links.name, server_clock)
        # The hot lone statements run on the asyncpg connection itself: SQL
        # compiled once here, asyncpg's own prepared-statement cache, and no
        # SQLAlchemy execution context or result object per call.
        self.raw_get: Prepared | None = None
        self.raw_set: Prepared | None = None
        self.raw_upserts: dict[Any, Prepared] = {}
        if self.sync_engine.dialect.driver == "asyncpg":
            self.raw_get = self.prepare(self.select_live_pod)
            self.raw_set = self.prepare(self.set_link_statement)
            self.raw_upserts = {
                statement: self.prepare(statement)
                for statement in (self.try_set_statement, self.if_absent_statement)
            }
            # The read is one statement in autocommit, run by `run_raw`, which
            # drops the connection if the call is interrupted: no connection
            # returns to the pool mid-protocol, and a SELECT the server still
            # runs changes nothing (tests/sql_backend/test_postgres_cancel_safe.py).
            # Writes stay shielded: a dropped connection does not stop the
            # server, which can commit the write after its caller has moved on,
            # where nothing (not even aclose) can wait for it.
            self.cancel_safe_operations = frozenset({"get_linked_pod"})
        #: Where the hot statements run when the backend built its engine
        #: itself (`SQLBackend`'s ``hot_pool``); None: on the engine's pool.
        self.hot_pool: HotPool | None = None

    def prepare(self, statement: Any) -> Prepared:
        """Compile ``statement`` for asyncpg: its SQL text and the order of its parameters."""
        compiled = statement.compile(dialect=self.sync_engine.dialect)
        return compiled.string, list(compiled.positiontup or ())

    @staticmethod
    def run_raw(conn: Connection, prepared: Prepared, params: dict[str, Any], fetch: str) -> Any:
        """Run ``prepared`` with asyncpg's ``fetch`` method on ``conn``'s driver connection.

        SQLAlchemy does not see this statement; a failure that is not an
        answer from the server (connection lost, timeout, cancellation)
        invalidates the connection so that the pool never reuses it.
        """
        sql, names = prepared
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            return await_(getattr(driver, fetch)(sql, *[params[n] for n in names]))
        except BaseException as exc:
            # Only an error about the statement itself (data, constraint,
            # serialization, syntax) leaves the connection usable. Anything
            # else (connection lost, administrator shutdown 57P01, timeout,
            # cancellation mid-operation) may leave asyncpg's connection
            # half-way: drop it at once (a polite close could meet "another
            # operation is in progress"), then let the pool forget it.
            if is_statement_error(exc) and not driver.is_closed():
                raise
            driver.terminate()
            conn.invalidate(exc if isinstance(exc, Exception) else None)
            if not isinstance(exc, Exception):
                raise
            # As SQLAlchemy reports a disconnect: the outcome is unknown.
            raise ConnectionError(f"the PostgreSQL connection broke: {exc!r}") from exc

    @staticmethod
    def _set_link_statement(table: str, server_clock: bool) -> TextClause:
        # Written as SQL: SQLAlchemy Core has no UPDATE ... FROM a locking CTE.
        # ``table`` is a checked prefix plus "links" (letters, digits, "_").
        now = _NOW_SQL if server_clock else ":now"
        sql = f"""
WITH old AS (
    SELECT link_key, pod, (expires_at IS NULL OR expires_at > {now}) AS live
    FROM {table} WHERE link_key = :b_link_key FOR UPDATE
), upd AS (
    UPDATE {table}
    SET pod = :b_pod, expires_at = {now} + :b_ttl, updated_at = {now}
    FROM old WHERE {table}.link_key = old.link_key
    RETURNING old.pod AS pod, old.live AS live
), ins AS (
    INSERT INTO {table}
        (link_key, owner_key, namespace, uid, service, pod, expires_at, service_key, updated_at)
    SELECT :b_link_key, :b_owner_key, :b_namespace, :b_uid, :b_service, :b_pod,
        {now} + :b_ttl, :b_service_key, {now}
    WHERE NOT EXISTS (SELECT 1 FROM old)
    ON CONFLICT (link_key) DO NOTHING
    RETURNING 1 AS one
)
SELECT (SELECT pod FROM upd) AS pod, (SELECT live FROM upd) AS live,
    (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins) AS written
"""
        binds: list[BindParameter[Any]] = [
            bindparam("b_link_key", type_=LargeBinary),
            bindparam("b_owner_key", type_=LargeBinary),
            bindparam("b_service_key", type_=LargeBinary),
            bindparam("b_namespace", type_=String),
            bindparam("b_uid", type_=String),
            bindparam("b_service", type_=String),
            bindparam("b_pod", type_=Integer),
            bindparam("b_ttl", type_=BigInteger),
        ]
        if not server_clock:
            binds.append(bindparam("now", type_=BigInteger))
        return text(sql).bindparams(*binds)

    def get_linked_pod(self, conn: Connection, key: bytes, now: int) -> int | None:
        """``SELECT pod ... AND live``, run by asyncpg itself (`run_raw`)."""
        if self.raw_get is None:
            return super().get_linked_pod(conn, key, now)
        pod: int | None = self.run_raw(
            conn, self.raw_get, {"b_link_key": key, "now": now}, "fetchval"
        )
        return pod

    def upsert_link(
        self,
        conn: Connection,
        statement: Insert,
        link: LinkId,
        pod: int,
        ttl: int | None,
        now: int,
    ) -> int:
        """Run the upsert ``... RETURNING pod`` on asyncpg itself (`run_raw`)."""
        prepared = self.raw_upserts.get(statement)
        if prepared is None:
            return super().upsert_link(conn, statement, link, pod, ttl, now)
        stored = self.run_raw(conn, prepared, self.link_params(link, pod, ttl, now), "fetchval")
        if stored is None:  # pragma: no cover - an upsert always leaves the row
            raise RetryTransaction("the upsert left no row")
        return int(stored)

    def set_linked_pod(
        self, conn: Connection, link: LinkId, pod: int, ttl: int | None, now: int
    ) -> int | None:
        """One statement: lock, overwrite or insert, and report the previous live pod."""
        params = self.link_params(link, pod, ttl, now)
        if self.raw_set is not None:
            record = self.run_raw(conn, self.raw_set, params, "fetchrow")
            previous, live, written = record["pod"], record["live"], record["written"]
        else:
            previous, live, written = conn.execute(self.set_link_statement, params).one()
        return self.set_outcome(previous, live, written)

    @staticmethod
    def set_outcome(previous: int | None, live: bool | None, written: int) -> int | None:
        """Return the previous live pod from the set statement's row; retry if it wrote nothing."""
        if not written:
            raise RetryTransaction("a concurrent transaction created the link first")
        return int(previous) if live and previous is not None else None

    # -- on the hot pool (`hot_pool`): the same statements, outside SQLAlchemy ------------

    def _pool(self) -> HotPool:
        pool = self.hot_pool
        if pool is None or self.raw_get is None:  # pragma: no cover - SQLBackend checks
            raise RuntimeError("no hot pool: the engine was not built from an asyncpg URL")
        return pool

    async def hot_get_linked_pod(self, key: bytes, clock: Clock | None) -> int | None:
        """`get_linked_pod` on the hot pool; ``clock`` None: the server's."""
        assert self.raw_get is not None
        params: dict[str, Any] = {"b_link_key": key}
        pod: int | None = await self._pool().run(self.raw_get, params, "fetchval", clock)
        return pod

    async def hot_set_linked_pod(
        self, link: LinkId, pod: int, ttl: int | None, clock: Clock | None
    ) -> int | None:
        """`set_linked_pod` on the hot pool."""
        assert self.raw_set is not None
        params = self.link_params(link, pod, ttl, 0)
        record = await self._pool().run(self.raw_set, params, "fetchrow", clock)
        return self.set_outcome(record["pod"], record["live"], record["written"])

    async def hot_upsert_link(
        self, statement: Insert, link: LinkId, pod: int, ttl: int | None, clock: Clock | None
    ) -> int:
        """One of the link upserts (`try_set_statement`, `if_absent_statement`) on the hot pool."""
        params = self.link_params(link, pod, ttl, 0)
        stored = await self._pool().run(self.raw_upserts[statement], params, "fetchval", clock)
        if stored is None:  # pragma: no cover - an upsert always leaves the row
            raise RetryTransaction("the upsert left no row")
        return int(stored)

    def server_now(self) -> ColumnElement[int]:
        """Return the server's clock at execution, in ms, as an uncorrelated subquery.

        ``clock_timestamp()`` is the time the row is processed (after any lock
        wait), unlike ``now()`` (start of the transaction). As a subquery it
        is evaluated once per statement and is a plan parameter, which index
        scans accept (a bare volatile function would disable the expiry index).
        """
        return literal_column(_NOW_SQL, BigInteger)

    def insert_into(self, table: Table) -> Any:
        """PostgreSQL's ``INSERT`` (``ON CONFLICT``, ``RETURNING``)."""
        return pg_insert(table)

    @contextmanager
    def open(self, *, write: bool, single: bool) -> Iterator[Connection]:
        """On an application's engine, run lone statements on an autocommit checkout."""
        if single and not self.explicit:
            with self.checkout(self.autocommit_engine) as conn:
                yield conn
            return
        with super().open(write=write, single=single) as conn:
            yield conn

    def insert_absent(self, conn: Connection, params: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING``; a conflict means retry the transaction."""
        inserted = conn.execute(self.insert_link_if_absent, params).first()
        if inserted is None:
            raise RetryTransaction("a concurrent transaction created the link first")

    def set_workload_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT (service_key) DO UPDATE SET state``."""
        conn.execute(self.upsert_workload_state, row)

    def purge_batch(self, conn: Connection, now: int) -> int:
        """Delete up to a batch of expired rows, skipping rows locked by operations."""
        return int(conn.execute(self.purge, {"now": now}).rowcount)
