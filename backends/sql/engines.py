"""Building the `AsyncEngine` behind a URL, with the settings the backend relies on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, SingletonThreadPool, StaticPool

from stateful.errors import ValidationError

#: The async driver used when a URL names only the database ("postgresql://").
DEFAULT_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
}

#: Seconds a SQLite writer waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT = 30.0


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, fill in the default async driver and the MariaDB charset.

    ``postgres://`` is accepted as ``postgresql://``. Raises `ValidationError`
    for a URL SQLAlchemy cannot parse or a database this backend does not serve.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError("url", f"not a SQLAlchemy URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in DEFAULT_DRIVERS:
        raise ValidationError(
            "url", f"the SQL backend serves sqlite, postgresql, mysql and mariadb, not {backend!r}"
        )
    parsed = parsed.set(drivername=f"{backend}+{driver or DEFAULT_DRIVERS[backend]}")
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        # Any Unicode identifier must round-trip; MySQL's "utf8" is 3-byte only.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    """Tell whether ``url`` is a private in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def uses_single_connection(engine: AsyncEngine) -> bool:
    """Tell whether every checkout of ``engine`` shares one DBAPI connection.

    That is the case for SQLite ``:memory:`` (StaticPool): operations on it
    must then take turns, since a connection holds one transaction at a time.
    """
    return isinstance(engine.sync_engine.pool, StaticPool | SingletonThreadPool)


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """Create the engine for ``url``; no connection is opened yet.

    SQLite: a 30 s busy timeout, write-ahead logging for files (readers never
    wait for the writer) with ``synchronous=NORMAL``, and the driver's own
    implicit ``BEGIN`` turned off (the backend issues its own).
    MariaDB/MySQL: READ COMMITTED (see `dialects.mysql`).
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    options = dict(engine_options)
    if backend == "sqlite":
        connect_args = dict(options.pop("connect_args", None) or {})
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT)
        options["connect_args"] = connect_args
    elif backend in ("mysql", "mariadb"):
        options.setdefault("isolation_level", "READ COMMITTED")
    try:
        engine = create_async_engine(parsed, **options)
    except (InvalidRequestError, ArgumentError) as exc:
        raise ValidationError("url", f"{parsed.drivername}: {exc}") from None
    if backend == "sqlite":
        _configure_sqlite(engine, wal=not is_sqlite_memory(parsed))
    return engine


def _configure_sqlite(engine: AsyncEngine, *, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # No implicit BEGIN from the driver: every transaction starts with the
        # BEGIN [IMMEDIATE] the backend sends (see dialects.sqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()
