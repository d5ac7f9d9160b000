"""MariaDB and MySQL: ``INSERT ... ON DUPLICATE KEY UPDATE`` and row locks.

* The state setters are one ``INSERT ... ON DUPLICATE KEY UPDATE``.
* `try_set_linked_pod` and `set_linked_pod_if_absent` are the same upsert
  as on PostgreSQL, decided in its ``UPDATE`` clause (which locks the row).
  On MariaDB 10.5+ it ends in ``RETURNING pod``, which gives the row as the
  upsert left it: one statement. MySQL has no ``RETURNING``: there the
  upsert is followed by ``SELECT pod ... FOR UPDATE`` of the row this
  transaction now holds.
* `set_linked_pod` locks the row with ``SELECT ... FOR UPDATE`` and writes;
  if the row was absent and a concurrent transaction inserts it first, the
  duplicate key error (1062) makes the backend retry.
* Removals are one ``UPDATE``/``DELETE`` (locking reads of the latest row).
* Deadlocks (1213) and lock wait timeouts (1205) are retried, boundedly.

Engines built by `from_url` run at READ COMMITTED, so a locking read of an
absent row takes no gap lock: under REPEATABLE READ two transactions that
insert different keys into the same gap can deadlock (they would be retried,
just slower). A batch read that needs several statements asks for
REPEATABLE READ for its own transaction, so all of them read one snapshot.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Insert,
    bindparam,
    delete,
    literal_column,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..schema import Tables
from .base import Dialect, LinkId

_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"


class MySQLDialect(Dialect):
    """MariaDB 10.5+ and MySQL 8 through asyncmy or aiomysql."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the MariaDB/MySQL statements on top of the portable ones."""
        super().__init__(
            engine, tables, purge_batch_size=purge_batch_size, server_clock=server_clock
        )
        links = tables.links
        pods, workloads = tables.pod_states, tables.workload_states
        state: BindParameter[str] = bindparam("b_state")
        pod_insert = mysql_insert(pods).values(**self.pod_state_values)
        self.upsert_pod_state = pod_insert.on_duplicate_key_update(
            state=pod_insert.inserted.state, expires_at=pod_insert.inserted.expires_at
        )
        self.upsert_workload_state = (
            mysql_insert(workloads).values(**self.state_row).on_duplicate_key_update(state=state)
        )
        # Built once (a statement per call would cost its construction each time).
        self.with_returning: dict[Insert, Insert] = {
            statement: statement.returning(links.c.pod)
            for statement in (self.try_set_statement, self.if_absent_statement)
        }
        self.purge = (
            delete(links)
            .where(links.c.expires_at <= self.now)
            .with_dialect_options(mysql_limit=purge_batch_size)
        )

    def server_now(self) -> ColumnElement[int]:
        """Return the server's clock in ms: ``NOW(3)``, the statement's start.

        ``UNIX_TIMESTAMP`` reads ``NOW(3)`` in the session's time zone; engines
        from `from_url` set it to UTC, so no daylight-saving hour is ambiguous.
        """
        return literal_column("CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)", BigInteger)

    #: One statement each where the server has ``INSERT ... RETURNING``.
    returning_single: ClassVar[frozenset[str]] = frozenset(
        {"try_set_linked_pod", "set_linked_pod_if_absent"}
    )

    def link_upsert(self, assignments: list[tuple[str, Any]]) -> Insert:
        """Return the upsert of a link row with ``assignments`` on conflict."""
        # A list keeps the order of the assignments, which MariaDB applies in turn.
        return (
            mysql_insert(self.tables.links)
            .values(**self.link_values)
            .on_duplicate_key_update(assignments)
        )

    @property
    def returning(self) -> bool:
        """True once connected to a server with ``INSERT ... RETURNING`` (MariaDB 10.5+)."""
        return bool(getattr(self.sync_engine.dialect, "insert_returning", False))

    def is_single(self, operation: str) -> bool:
        """Count the upserts as one statement on MariaDB 10.5+ (``RETURNING``)."""
        if self.returning and operation in self.returning_single:
            return True
        return super().is_single(operation)

    def upsert_link(
        self,
        conn: Connection,
        statement: Insert,
        link: LinkId,
        pod: int,
        ttl: int | None,
        now: int,
    ) -> int:
        """Upsert ``RETURNING pod`` (MariaDB 10.5+), else upsert and read back the locked row."""
        params = self.link_params(link, pod, ttl, now)
        if self.returning:
            stored = conn.execute(self.with_returning[statement], params)
            return int(stored.scalar_one())
        conn.execute(statement, params)
        row = conn.execute(self.select_link_locked, {"b_link_key": link.key, "now": now})
        return int(row.scalar_one())

    def set_workload_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """``INSERT ... ON DUPLICATE KEY UPDATE state = :state``."""
        conn.execute(self.upsert_workload_state, row)

    # A read of several statements (a chunked batch) needs one snapshot.

    def managed_begin(self, conn: Connection, *, write: bool, single: bool) -> None:
        """Before a read of several statements, ask for REPEATABLE READ."""
        if not write and not single:
            conn.exec_driver_sql(_SNAPSHOT)

    def begin(self, conn: Connection, *, write: bool) -> None:
        """``START TRANSACTION``; a read of several statements at REPEATABLE READ."""
        if not write:
            conn.exec_driver_sql(_SNAPSHOT)
        conn.exec_driver_sql("START TRANSACTION")

    def purge_batch(self, conn: Connection, now: int) -> int:
        """``DELETE ... WHERE expires_at <= :now LIMIT n``."""
        return int(conn.execute(self.purge, {"now": now}).rowcount)
