"""SQLite: one writer at a time, taken at ``BEGIN IMMEDIATE``.

SQLite locks the whole database for writing. A transaction that starts
with a plain (deferred) ``BEGIN``, reads, and then writes may find the lock
taken and fail at once with "database is locked", because waiting could
deadlock. Starting every write transaction with ``BEGIN IMMEDIATE`` takes the
write lock first, where the busy timeout applies, so writers queue instead of
failing. Reads use a deferred ``BEGIN``: under WAL they never block and see
one snapshot.

The statements are issued here rather than from a ``begin`` event hook so
that they also work on an engine the application built and configured
itself, whatever transaction mode its driver is in.

Writers of one process also queue on an `asyncio.Lock` per database file
(shared by every engine of the event loop) before they take a connection:
SQLite admits one writer anyway, and a queue in the process hands the write
lock over at once, where waiting in SQLite's busy handler would sleep in
growing steps (up to 100 ms). Writers in other processes still meet at the
busy timeout.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

import aiosqlite
from sqlalchemy import Insert, Table, delete, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from stateful.errors import BackendUnavailable

from ..errors import sqlite_code
from ..schema import Tables
from .base import LinkId
from .on_conflict import OnConflictDialect

#: SQLite's result code for "unable to open database file".
SQLITE_CANTOPEN = 14

_writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _driver(conn: Connection) -> aiosqlite.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, aiosqlite.Connection), "the SQLite backend needs aiosqlite"
    return driver


def writer_lock(database: str) -> asyncio.Lock:
    """Return the lock that writers of ``database`` in this event loop queue on."""
    locks = _writer_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(database, asyncio.Lock())


class SQLiteDialect(OnConflictDialect):
    """SQLite 3.35+ (``RETURNING``), through aiosqlite."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Tables,
        *,
        purge_batch_size: int,
        server_clock: bool = False,
    ) -> None:
        """Build the SQLite upserts on top of the portable statements.

        SQLite runs in this process: its "server clock" is the system clock,
        which the backend binds as ``now``; ``server_clock`` must be False.
        """
        super().__init__(engine, tables, purge_batch_size=purge_batch_size)
        links = tables.links
        expired = (
            select(links.c.link_key)
            .where(links.c.expires_at <= self.now)
            .limit(purge_batch_size)
            .scalar_subquery()
        )
        self.purge = delete(links).where(links.c.link_key.in_(expired))
        database = engine.url.database or ""
        self.database = os.path.abspath(database) if database else database
        # The hot lone statements go straight to aiosqlite: SQL compiled once,
        # one trip to aiosqlite's thread (execute_fetchall) where SQLAlchemy's
        # adapter makes four (cursor, execute, fetch, close).
        self.raw_get = self.prepare(self.select_live_pod)
        self.raw_upserts = {
            statement: self.prepare(statement)
            for statement in (self.try_set_statement, self.if_absent_statement)
        }

    def prepare(self, statement: Any) -> tuple[str, list[str]]:
        """Compile ``statement`` for sqlite3: SQL text and the parameter names in order."""
        compiled = statement.compile(dialect=self.sync_engine.dialect)
        return compiled.string, list(compiled.positiontup or ())

    @staticmethod
    def fetch_all(conn: Connection, prepared: tuple[str, list[str]], params: dict[str, Any]) -> Any:
        """Run ``prepared`` on ``conn``'s aiosqlite connection in one trip to its thread.

        The statement runs whole in that thread (a cancelled caller does not
        interrupt it), so the connection is never left half-way.
        """
        sql, names = prepared
        return await_(_driver(conn).execute_fetchall(sql, [params[n] for n in names]))

    def get_linked_pod(self, conn: Connection, key: bytes, now: int) -> int | None:
        """``SELECT pod ... AND live`` straight on aiosqlite (`fetch_all`)."""
        rows = self.fetch_all(conn, self.raw_get, {"b_link_key": key, "now": now})
        return int(rows[0][0]) if rows else None

    def upsert_link(
        self,
        conn: Connection,
        statement: Insert,
        link: LinkId,
        pod: int,
        ttl: int | None,
        now: int,
    ) -> int:
        """Run the upsert ``... RETURNING pod`` straight on aiosqlite (`fetch_all`)."""
        prepared = self.raw_upserts.get(statement)
        if prepared is None:
            return super().upsert_link(conn, statement, link, pod, ttl, now)
        rows = self.fetch_all(conn, prepared, self.link_params(link, pod, ttl, now))
        return int(rows[0][0])

    def checkout(self, engine: Engine) -> Connection:
        """Open or reuse a connection; a file SQLite cannot open is named in the error."""
        try:
            return super().checkout(engine)
        except sa_exc.OperationalError as exc:
            if sqlite_code(exc) != SQLITE_CANTOPEN:
                raise
            path = self.database or ":memory:"
            folder = os.path.dirname(path)
            hint = (
                f"the directory {folder!r} does not exist"
                if folder and not os.path.isdir(folder)
                else "check that the file and its directory are readable and writable"
            )
            raise BackendUnavailable(
                f"cannot open the SQLite database file {path!r} "
                f"(from URL {self.engine.url.render_as_string(hide_password=True)!r}): {hint}"
            ) from exc

    def turn_for(self, *, write: bool) -> asyncio.Lock | None:
        """Writers to the same file take turns within the process; readers never wait."""
        if self.turn is not None:
            return self.turn
        return writer_lock(self.database) if write else None

    def insert_into(self, table: Table) -> Any:
        """SQLite's ``INSERT`` (``ON CONFLICT``, ``RETURNING`` since 3.35)."""
        return sqlite_insert(table)

    def lone_statement_ok(self, *, write: bool) -> bool:
        """Allow a lone SELECT (consistent by itself); writers always take the lock first."""
        return not write

    def managed_begin(self, conn: Connection, *, write: bool, single: bool) -> None:
        """``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads."""
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    # Transaction control goes straight to aiosqlite: one trip to its thread
    # each, where a statement through SQLAlchemy's cursor adapter takes three.

    def begin(self, conn: Connection, *, write: bool) -> None:
        """``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads."""
        await_(_driver(conn).execute("BEGIN IMMEDIATE" if write else "BEGIN"))

    def commit(self, conn: Connection) -> None:
        """``COMMIT``."""
        await_(_driver(conn).commit())

    def rollback(self, conn: Connection) -> None:
        """``ROLLBACK``."""
        await_(_driver(conn).rollback())

    def set_workload_state(self, conn: Connection, row: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT (service_key) DO UPDATE SET state``."""
        conn.execute(self.upsert_workload_state, row)

    def purge_batch(self, conn: Connection, now: int) -> int:
        """``DELETE ... WHERE link_key IN (SELECT ... WHERE expires_at <= now LIMIT n)``."""
        return int(conn.execute(self.purge, {"now": now}).rowcount)
