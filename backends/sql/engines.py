"""Building the `AsyncEngine` behind a URL, with the settings the backend relies on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import (
    AsyncAdaptedQueuePool,
    ConnectionPoolEntry,
    SingletonThreadPool,
    StaticPool,
)

from stateful.errors import StatefulError, ValidationError

#: The async driver used when a URL names only the database ("postgresql://").
DEFAULT_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
}

#: Seconds a SQLite writer waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT = 30.0

#: What a SQLite connection runs once opened: write-ahead logging (readers
#: never wait for the writer; not for ``:memory:``), fsync at checkpoints only.
SQLITE_ON_CONNECT = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")

#: Seconds to open a connection to a server, handshake and login included.
CONNECT_TIMEOUT = 10.0

#: Seconds one statement may wait for the server's answer (PostgreSQL
#: ``command_timeout``, asyncmy ``read_timeout``): a server that stops
#: answering fails the call instead of holding it forever.
COMMAND_TIMEOUT = 30.0

#: Pool defaults: connections kept, extra ones allowed under load, and seconds
#: a call waits for a free connection before `stateful.PoolExhausted`. No
#: overflow by default: SQLAlchemy closes an overflow connection as soon as it
#: is returned to a full pool, so above ``pool_size`` concurrent calls every
#: call would open (and log into) a fresh connection; that churn is why
#: PostgreSQL throughput used to fall from 1 to 10 concurrent tasks with the
#: old defaults (5 + 10 overflow). Waiting for a pooled connection is cheaper.
POOL_SIZE = 10
MAX_OVERFLOW = 0
POOL_TIMEOUT = 30.0


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
    try:
        is_async = getattr(parsed.get_dialect(), "is_async", False)
    except NoSuchModuleError:
        raise ValidationError("url", f"SQLAlchemy has no driver {parsed.drivername!r}") from None
    if not is_async:
        raise ValidationError(
            "url",
            f"{parsed.drivername!r} is not an asyncio driver; use e.g. "
            f"{backend}+{DEFAULT_DRIVERS[backend]}://",
        )
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


def in_autocommit(engine: AsyncEngine) -> bool:
    """Tell whether ``engine``'s connections run in AUTOCOMMIT.

    The backend then frames its transactions with BEGIN/COMMIT statements itself.
    """
    level = engine.get_execution_options().get("isolation_level") or getattr(
        engine.sync_engine.dialect, "_on_connect_isolation_level", None
    )
    return level == "AUTOCOMMIT"


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """Create the engine for ``url``; no connection is opened yet.

    Connections run in AUTOCOMMIT and the backend frames its own transactions
    (a lone statement needs no BEGIN/COMMIT round trips); nothing is rolled
    back on return to the pool, since every transaction ends before that.
    SQLite: a 30 s busy timeout, write-ahead logging for files (readers never
    wait for the writer) with ``synchronous=NORMAL``.
    MariaDB/MySQL: sessions at READ COMMITTED (see `dialects.mysql`), in UTC.

    Nothing waits without bound: a bounded pool (``pool_size`` connections
    plus ``max_overflow`` under load; a call waits up to ``pool_timeout`` s
    for one, then fails with `stateful.PoolExhausted`), a connect timeout
    (``connect_args``: asyncpg ``timeout``, asyncmy ``connect_timeout``;
    the handshake of asyncmy is bounded by its ``read_timeout``) and a
    per-statement timeout (asyncpg ``command_timeout``, asyncmy
    ``read_timeout``). Keyword arguments go to `create_async_engine` and win
    over these defaults; ``connect_args`` entries win one by one.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        "skip_autocommit_rollback": True,
        "pool_reset_on_return": None,
        **engine_options,
    }
    connect_args = driver_connect_args(parsed, options.pop("connect_args", None))
    if connect_args:
        options["connect_args"] = connect_args
    if not is_sqlite_memory(parsed) and "poolclass" not in options:
        options.setdefault("pool_size", POOL_SIZE)
        options.setdefault("max_overflow", MAX_OVERFLOW)
        options.setdefault("pool_timeout", POOL_TIMEOUT)
    try:
        engine = create_async_engine(parsed, **options)
    except ModuleNotFoundError as exc:
        extra = {"sqlite": "sql", "mariadb": "mysql"}.get(backend, backend)
        hint = (
            f"pip install 'stateful-routing[{extra}]'"
            if exc.name == DEFAULT_DRIVERS[backend]
            else f"pip install {exc.name}"
        )
        raise StatefulError(
            f"{parsed.drivername}: the driver package {exc.name!r} is not installed: {hint}"
        ) from exc
    except (InvalidRequestError, ArgumentError, TypeError) as exc:
        raise ValidationError("url", f"{parsed.drivername}: {exc}") from None
    if backend == "sqlite":
        _on_connect(engine, *SQLITE_ON_CONNECT)
    elif backend in ("mysql", "mariadb"):
        _on_connect(
            engine,
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            # UTC: UNIX_TIMESTAMP(NOW(3)) (the server clock) is then never ambiguous.
            "SET time_zone = '+00:00'",
        )
    return engine


def driver_connect_args(url: URL, given: dict[str, Any] | None) -> dict[str, Any]:
    """Return the ``connect_args`` `create_engine` gives the driver: ``given`` over defaults."""
    connect_args = dict(given or {})
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT)
    elif driver == "asyncpg":
        connect_args.setdefault("timeout", CONNECT_TIMEOUT)
        connect_args.setdefault("command_timeout", COMMAND_TIMEOUT)
    elif driver == "asyncmy":
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
        # asyncmy's connect_timeout covers the TCP connect only; the
        # handshake and every reply are read under read_timeout.
        connect_args.setdefault("read_timeout", COMMAND_TIMEOUT)
    elif driver == "aiomysql":
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return connect_args


#: Engine options under which the hot pool would not open or keep connections as asked.
_POOLING_CHANGED = ("creator", "async_creator", "poolclass", "pool_pre_ping", "pool_recycle")
#: Values of those options that leave pooling as it is (``pool_recycle=-1`` is off).
_OFF: tuple[object, ...] = (None, False, -1)

#: Keyword arguments of SQLAlchemy's asyncpg adapter that asyncpg itself does not take.
_ADAPTER_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


def hot_connect_params(
    engine: AsyncEngine, engine_options: dict[str, Any]
) -> dict[str, Any] | None:
    """Return ``asyncpg.connect`` arguments that open connections like ``engine``'s, or None.

    ``engine`` was built by `create_engine` with ``engine_options``. The
    arguments are derived as SQLAlchemy derives them (the dialect's
    `create_connect_args` of the URL, then ``connect_args`` over them), less
    the adapter's own; the session is then the same: asyncpg connections are
    in autocommit by themselves (SQLAlchemy's AUTOCOMMIT sends nothing on
    asyncpg) and no other setting is made on connect. None where that cannot
    be reproduced or pooling was changed: another driver, a ``creator`` or
    ``async_creator``, a ``poolclass`` other than the default queue pool, an
    unbounded pool (``pool_size=0``), ``pool_pre_ping`` or ``pool_recycle``
    (checks the hot pool does not make).
    """
    if engine.dialect.driver != "asyncpg":
        return None
    args = _pooled_connect_args(engine, engine_options)
    # (A queue pool when there are arguments: size() exists.)
    if args is None or args[0] or engine.sync_engine.pool.size() < 1:  # type: ignore[attr-defined]
        return None
    params = args[1]
    for name in _ADAPTER_ONLY:
        params.pop(name, None)
    return params


def sqlite_writer_params(
    engine: AsyncEngine, engine_options: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]] | None:
    """Return ``aiosqlite.connect`` arguments that open connections like ``engine``'s, or None.

    For SQLite's own writer connection (`sqlite_writer.SQLiteWriter`), as
    `hot_connect_params` for PostgreSQL: the dialect's `create_connect_args`
    of the URL, then ``connect_args`` over them; the writer then runs
    `SQLITE_ON_CONNECT` and frames its transactions itself, as the engine's
    AUTOCOMMIT connections do. None for another driver, a database in memory
    (a second connection would be another database), or pooling changed
    (``creator``, ``async_creator``, ``poolclass``, ``pool_pre_ping``,
    ``pool_recycle``).
    """
    if engine.dialect.driver != "aiosqlite" or is_sqlite_memory(engine.url):
        return None
    return _pooled_connect_args(engine, engine_options)


def _pooled_connect_args(
    engine: AsyncEngine, engine_options: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]] | None:
    """Return the driver's ``connect`` arguments as ``engine``'s pool uses them, or None.

    The dialect's `create_connect_args` of the URL, then ``connect_args``
    over them. None where the pool would not connect that way: a ``creator``
    or ``async_creator``, a ``poolclass`` other than the default queue pool,
    ``pool_pre_ping`` or ``pool_recycle``.
    """
    if not isinstance(engine.sync_engine.pool, AsyncAdaptedQueuePool):
        return None
    if any(engine_options.get(name) not in _OFF for name in _POOLING_CHANGED):
        return None
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    params = {**cparams, **driver_connect_args(engine.url, engine_options.get("connect_args"))}
    if "async_creator_fn" in params:
        return None
    return list(cargs), params


def _on_connect(engine: AsyncEngine, *statements: str) -> None:
    memory = is_sqlite_memory(engine.url)

    @event.listens_for(engine.sync_engine, "connect")
    def _set_up(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                if not (memory and "journal_mode" in statement):
                    cursor.execute(statement)
        finally:
            cursor.close()
