"""Per-database statement sets; `dialect_for` picks the one matching an engine."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ..schema import Tables
from .base import Dialect, LinkId, is_live
from .mysql import MySQLDialect
from .postgresql import PostgreSQLDialect
from .sqlite import SQLiteDialect

__all__ = ["Dialect", "LinkId", "dialect_for", "is_live"]


def dialect_for(
    engine: AsyncEngine, tables: Tables, *, purge_batch_size: int, server_clock: bool = False
) -> Dialect:
    """Return the `Dialect` for ``engine``'s database; ValueError if unsupported.

    ``server_clock``: the statements read the database server's clock
    (PostgreSQL, MariaDB/MySQL only).
    """
    name = engine.dialect.name
    kinds: dict[str, type[Dialect]] = {
        "sqlite": SQLiteDialect,
        "postgresql": PostgreSQLDialect,
        "mysql": MySQLDialect,
        "mariadb": MySQLDialect,
    }
    if name not in kinds:
        raise ValueError(f"stateful's SQL backend does not support the {name!r} dialect")
    return kinds[name](engine, tables, purge_batch_size=purge_batch_size, server_clock=server_clock)
