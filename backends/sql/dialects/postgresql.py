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
  show before PostgreSQL 18, so it locks the row (``SELECT ... FOR UPDATE``)
  and then writes: a two-statement transaction. If the row was absent and a
  concurrent transaction inserts it first, ``ON CONFLICT DO NOTHING`` inserts
  nothing and the transaction is retried.

A lone statement runs in autocommit: it is its own transaction, which saves
the ``BEGIN`` and ``COMMIT`` round trips. On an engine the application
passed in, that takes an ``AUTOCOMMIT`` checkout of its pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    LargeBinary,
    Table,
    any_,
    bindparam,
    delete,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import RetryTransaction
from ..schema import Tables
from .on_conflict import OnConflictDialect


class PostgreSQLDialect(OnConflictDialect):
    """PostgreSQL 12+ through asyncpg (or another SQLAlchemy async driver)."""

    batch_size = None  # the keys travel as one array, in one statement

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

    def server_now(self) -> ColumnElement[int]:
        """Return the server's clock at execution, in ms, as an uncorrelated subquery.

        ``clock_timestamp()`` is the time the row is processed (after any lock
        wait), unlike ``now()`` (start of the transaction). As a subquery it
        is evaluated once per statement and is a plan parameter, which index
        scans accept (a bare volatile function would disable the expiry index).
        """
        return literal_column(
            "(SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT))",
            BigInteger,
        )

    def insert_into(self, table: Table) -> Any:
        """PostgreSQL's ``INSERT`` (``ON CONFLICT``, ``RETURNING``)."""
        return pg_insert(table)

    @contextmanager
    def open(self, *, write: bool, single: bool) -> Iterator[Connection]:
        """On an application's engine, run lone statements on an autocommit checkout."""
        if single and not self.explicit:
            with self.autocommit_engine.connect() as conn:
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
