"""Reading driver exceptions: which mean "retry", which mean "unreachable".

SQLAlchemy wraps a driver's exception in `sqlalchemy.exc.DBAPIError`
(``.orig``), and the asyncio adapters wrap the driver's own exception again
(``__cause__``), so every test here walks that chain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
PG_RETRY_STATES = frozenset({"40001", "40P01"})
# PostgreSQL: class 08 is "connection exception"; 57P01..03 are shutdowns and
# "cannot connect now" (server starting up).
PG_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# MariaDB/MySQL error numbers worth retrying: deadlock (1213), lock wait
# timeout (1205), duplicate key on the insert of a row that a concurrent
# transaction created first (1062), "record has changed since last read" under
# MariaDB's snapshot isolation (1020).
MYSQL_RETRY_CODES = frozenset({1213, 1205, 1062, 1020})
# MariaDB/MySQL client and server codes for "cannot connect / connection lost /
# server going away".
MYSQL_UNAVAILABLE_CODES = frozenset(
    {1040, 1053, 1077, 1152, 1158, 1159, 1160, 1161, 1927, 2002, 2003, 2005, 2006, 2013, 2055}
)
# PostgreSQL SQLSTATE classes of errors about a statement itself (data exception,
# integrity constraint violation, transaction rollback, syntax error or access
# rule violation), after which the connection is fine.
PG_STATEMENT_ERROR_CLASSES = frozenset({"22", "23", "40", "42"})
# SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), should a busy timeout run out.
SQLITE_RETRY_CODES = frozenset({5, 6})
# aiosqlite's messages for a connection that is closed (lower case).
_SQLITE_CLOSED = ("no active connection", "connection closed")


def causes(error: BaseException) -> Iterator[BaseException]:
    """Yield ``error``, the DBAPI exception inside it and their causes, once each."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 16:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            pending.append(orig)
        pending.extend([current.__context__, current.__cause__])


def sqlstate(error: BaseException) -> str | None:
    """Return the PostgreSQL SQLSTATE in the chain of ``error``, if any."""
    for cause in causes(error):
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def mysql_code(error: BaseException) -> int | None:
    """Return the MariaDB/MySQL error number in the chain of ``error``, if any."""
    for cause in causes(error):
        args = getattr(cause, "args", ())
        module = type(cause).__module__
        drivers = ("asyncmy", "aiomysql", "pymysql")
        if args and isinstance(args[0], int) and module.startswith(drivers):
            return args[0]
    return None


def sqlite_code(error: BaseException) -> int | None:
    """Return the primary SQLite result code in the chain of ``error``, if any."""
    for cause in causes(error):
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", None)
            if isinstance(code, int):
                return code & 0xFF
            if "database is locked" in str(cause):
                return 5
    return None


def sqlite_disconnect(error: BaseException) -> bool:
    """Tell whether ``error`` means the SQLite connection is closed.

    The test of SQLAlchemy's aiosqlite dialect, applied to the raw errors of
    aiosqlite and sqlite3 that the dialect's direct path (`dialects.sqlite_thread`)
    meets unwrapped: aiosqlite's ``ValueError("no active connection")`` or
    ``("Connection closed")``, sqlite3's "Cannot operate on a closed database."
    """
    for cause in causes(error):
        text = str(cause)
        if isinstance(cause, sqlite3.ProgrammingError):
            if "Cannot operate on a closed database." in text:
                return True
        elif isinstance(cause, sqlite3.OperationalError):
            if any(closed in text.lower() for closed in _SQLITE_CLOSED):
                return True
        elif isinstance(cause, ValueError) and text.lower() in _SQLITE_CLOSED:
            return True
    return False


def is_statement_error(error: BaseException) -> bool:
    """Tell whether PostgreSQL rejected the statement itself (`PG_STATEMENT_ERROR_CLASSES`).

    Only such an error leaves an asyncpg connection usable after a statement
    run on it directly; see `PostgreSQLDialect.run_raw` and `hot_pool`.
    """
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state[:2] in PG_STATEMENT_ERROR_CLASSES


def is_retryable(error: BaseException) -> bool:
    """Tell whether running the whole transaction again may succeed.

    True for serialization failures, deadlocks, lock wait timeouts and the
    duplicate key of a concurrent insert; never for a lost connection (the
    outcome of the first attempt is unknown).
    """
    if is_unavailable(error):
        return False
    if isinstance(error, RetryTransaction):
        return True
    # MariaDB's exceptions carry a SQLSTATE too (40001 for a deadlock), so each
    # test stands on its own.
    return (
        sqlstate(error) in PG_RETRY_STATES
        or mysql_code(error) in MYSQL_RETRY_CODES
        or sqlite_code(error) in SQLITE_RETRY_CODES
    )


def is_unavailable(error: BaseException) -> bool:
    """Tell whether ``error`` means the database could not be reached or the link broke."""
    for cause in causes(error):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True
        if isinstance(cause, OSError | ConnectionError | TimeoutError | EOFError):
            return True
    if sqlite_disconnect(error):
        return True
    code = mysql_code(error)
    if code is not None:
        return code in MYSQL_UNAVAILABLE_CODES
    state = sqlstate(error)
    return state is not None and (state.startswith("08") or state in PG_UNAVAILABLE_STATES)


class RetryTransaction(Exception):
    """Raised inside a transaction to roll it back and run it again.

    Used when a concurrent transaction inserted the row this one meant to
    insert: a fresh attempt sees that row and decides again.
    """
