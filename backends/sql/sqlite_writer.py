"""SQLite's link writes on an aiosqlite connection of the backend's own.

A router calls `set_linked_pod` on every request. On SQLite the write is
already one trip to aiosqlite's thread (`dialects.sqlite_thread`); what
SQLAlchemy still added per call was the greenlet the call ran in, its pool's
checkout and return, and the transaction framing around the trip: about a
third of the time of a write at one task. A backend that built its engine
from a ``sqlite+aiosqlite://`` file URL (`from_url`) therefore sends the
one-row link writes (`set_linked_pod`, `try_set_linked_pod`,
`set_linked_pod_if_absent`, `place_linked_pod` with a pod) straight to one
aiosqlite connection of its own, opened like the engine's connections.

The rules are those of the engine's write path:

* writers of one database file take turns within the process (the same
  `dialects.sqlite.writer_lock`); the wait is marked
  (`stateful.backend.waiting_for_connection`), so an executor timeout there
  is `PoolExhausted` (nothing was sent);
* a write is one `Trip`: ``BEGIN IMMEDIATE``, the clock read once the write
  lock is held, the statements and COMMIT; a write whose caller left before
  the lock was held rolls back without running, one that started runs to its
  end in the thread;
* a connection found closed is replaced before the next write; a write that
  met it closed reports the error (`errors.sqlite_disconnect`: unavailable);
* reads stay on the engine's pool: one connection would queue them behind a
  write waiting for another process's lock, and readers never wait (WAL);
* `aclose` closes the connection once its queued trips are done; `terminate`
  tells its thread to stop at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from stateful.backend import waiting_for_connection
from stateful.errors import StatefulError

from .dialects.sqlite_thread import Job, Trip, is_open, set_daemon
from .errors import sqlite_disconnect

T = TypeVar("T")


class SQLiteWriter:
    """One aiosqlite connection for the link writes, opened on first use."""

    def __init__(
        self,
        connect_args: Sequence[Any],
        connect_kwargs: dict[str, Any],
        on_connect: Sequence[str],
        *,
        lock: Callable[[], asyncio.Lock],
        track: Callable[[aiosqlite.Connection], None],
    ) -> None:
        """Open connections with ``aiosqlite.connect(*connect_args, **connect_kwargs)``.

        ``on_connect``: statements run on each new connection (the engine's
        PRAGMAs). ``lock`` returns the writers' lock of the database in the
        running loop, held for each write. ``track`` is told of each new
        connection (`dialects.sqlite_thread.Workers.add`: a close waits for
        its thread).
        """
        self._args = tuple(connect_args)
        self._kwargs = {**connect_kwargs, "isolation_level": None}  # the backend frames
        self._on_connect = tuple(on_connect)
        self._lock = lock
        self._track = track
        self._conn: aiosqlite.Connection | None = None
        self._closed = False

    async def run(self, job: Job[T], now: Callable[[], int]) -> T:
        """Run ``job`` as a whole write transaction, its ``now`` read once the lock is held."""
        lock = self._lock()
        with waiting_for_connection():
            await lock.acquire()
        try:
            conn = self._conn
            if conn is None or not is_open(conn):
                conn = await self._open()
            try:
                return await Trip(conn, job, commit=True, now=now).run()
            except Exception as exc:
                if sqlite_disconnect(exc) and self._conn is conn:
                    self._conn = None
                    conn.stop()
                raise
        finally:
            lock.release()

    async def _open(self) -> aiosqlite.Connection:
        if self._closed:
            raise StatefulError("the SQL backend is closed")
        if self._conn is not None:
            self._conn.stop()
            self._conn = None
        conn = aiosqlite.connect(*self._args, **self._kwargs)
        set_daemon(conn)
        self._track(conn)
        try:
            await conn
            for statement in self._on_connect:
                await (await conn.execute(statement)).close()
        except BaseException:
            conn.stop()
            raise
        self._conn = conn
        return conn

    async def aclose(self) -> None:
        """Close the connection once the trips queued on it are done (the caller bounds this)."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except BaseException:
                conn.stop()
                raise

    def terminate(self) -> None:
        """Tell the connection's thread to stop after what is queued; return at once."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.stop()
