"""The conformance state machine on SQLite (memory and file), PostgreSQL and MariaDB.

Each example gets a new backend with its own engine over emptied tables (the
schema is migrated once per session); the machine closes it, which disposes
the engine.
"""

from __future__ import annotations

import pytest

from stateful.backend import Backend
from stateful.backends.sql import from_url
from stateful.clock import ManualClock
from stateful.testing import conformance_machine
from tests.sql_backend import endpoints
from tests.sql_backend.scratch import empty_backend


async def make_sqlite_memory_backend(clock: ManualClock) -> Backend:
    return from_url("sqlite+aiosqlite://", clock=clock)


async def make_sqlite_file_backend(clock: ManualClock) -> Backend:
    return await empty_backend(endpoints.require(endpoints.SQLITE_FILE, "sqlite_file_url"), clock)


async def make_postgres_backend(clock: ManualClock) -> Backend:
    return await empty_backend(endpoints.require(endpoints.POSTGRES, "postgres_url"), clock)


async def make_mysql_backend(clock: ManualClock) -> Backend:
    return await empty_backend(endpoints.require(endpoints.MYSQL, "mysql_url"), clock)


_Memory = conformance_machine("SQLiteMemoryConformance", make_sqlite_memory_backend)
_File = conformance_machine("SQLiteFileConformance", make_sqlite_file_backend)
_Postgres = conformance_machine("PostgresConformance", make_postgres_backend)
_MySQL = conformance_machine("MariaDBConformance", make_mysql_backend)


class TestSQLiteMemoryConformance(_Memory.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on SQLite ``:memory:`` (a fresh database per example)."""


@pytest.mark.usefixtures("sqlite_file_url")
class TestSQLiteFileConformance(_File.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on a SQLite file in WAL mode."""


@pytest.mark.usefixtures("postgres_url")
class TestPostgresConformance(_Postgres.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on PostgreSQL."""


@pytest.mark.usefixtures("mysql_url")
class TestMariaDBConformance(_MySQL.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on MariaDB."""
