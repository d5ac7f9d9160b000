"""Backends over empty stores, and database housekeeping for the tests."""

from __future__ import annotations

from sqlalchemy import delete, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from stateful.backends.sql import SQLBackend, build_tables, from_url
from stateful.backends.sql.schema import version_table_name
from stateful.clock import Clock
from tests.sql_backend import endpoints


async def empty_backend(url: str, clock: Clock, prefix: str = endpoints.PREFIX) -> SQLBackend:
    """A backend on ``url`` (already migrated) whose tables were just emptied."""
    backend = from_url(url, clock=clock, table_prefix=prefix)
    tables = build_tables(prefix)
    async with backend.engine.begin() as conn:
        for table in (tables.links, tables.pod_states, tables.workload_states):
            await conn.execute(delete(table))
    return backend


async def drop_tables(url: str, prefix: str) -> None:
    """Drop stateful's tables (and version table) named with ``prefix`` at ``url``."""
    engine = create_async_engine(url)
    try:
        tables = build_tables(prefix)
        async with engine.begin() as conn:
            await conn.run_sync(tables.metadata.drop_all, checkfirst=True)
            await conn.execute(text(f"DROP TABLE IF EXISTS {version_table_name(prefix)}"))
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    """Names of the tables at ``url``."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(_table_names))
    finally:
        await engine.dispose()


def _table_names(connection: Connection) -> list[str]:
    return inspect(connection).get_table_names()
