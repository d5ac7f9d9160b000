"""What PostgreSQL and SQLite share: ``INSERT ... ON CONFLICT DO UPDATE`` upserts."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Insert, Table, Update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..schema import Tables
from .base import Dialect, LinkId


class OnConflictDialect(Dialect):
    """A database whose upserts are ``ON CONFLICT (key) DO UPDATE ... RETURNING``.

    Both conditional link writes are then one statement (`Dialect.link_upsert`),
    and so are the state setters.
    """

    single_statement: ClassVar[frozenset[str]] = Dialect.single_statement | {
        "try_set_linked_pod",
        "set_linked_pod_if_absent",
        "place_linked_pod",
    }

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the state upserts on top of the portable statements."""
        super().__init__(
            engine, tables, purge_batch_size=purge_batch_size, server_clock=server_clock
        )
        pods, workloads = tables.pod_states, tables.workload_states
        pod_insert = self.insert_into(pods).values(**self.pod_state_values)
        self.upsert_pod_state = pod_insert.on_conflict_do_update(
            index_elements=[pods.c.service_key, pods.c.pod],
            set_={"state": pod_insert.excluded.state, "expires_at": pod_insert.excluded.expires_at},
        )
        # Refresh-only placement as one statement: the UPDATE locks and
        # re-checks the row, RETURNING gives its pod.
        self.refresh_live_returning: Update = self.refresh_live.returning(tables.links.c.pod)
        workload_insert = self.insert_into(workloads).values(**self.state_row)
        self.upsert_workload_state = workload_insert.on_conflict_do_update(
            index_elements=[workloads.c.service_key],
            set_={"state": workload_insert.excluded.state},
        )

    def insert_into(self, table: Table) -> Any:
        """Return this database's ``INSERT`` construct (it has ``on_conflict_do_update``)."""
        raise NotImplementedError

    def link_upsert(self, assignments: list[tuple[str, Any]]) -> Insert:
        """Return the upsert of a link row with ``assignments`` on conflict."""
        links = self.tables.links
        upsert: Insert = (
            self.insert_into(links)
            .values(**self.link_values)
            .on_conflict_do_update(index_elements=[links.c.link_key], set_=dict(assignments))
            .returning(links.c.pod)
        )
        return upsert

    def refresh_link(self, conn: Connection, link: LinkId, ttl: int | None, now: int) -> int | None:
        """``UPDATE ... WHERE live ... RETURNING pod``: refresh and read in one statement."""
        params = self.link_params(link, 0, ttl, now)
        pod: int | None = conn.execute(self.refresh_live_returning, params).scalar_one_or_none()
        return pod
