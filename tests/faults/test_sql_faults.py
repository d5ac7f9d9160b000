"""SQL faults under a checked load: PostgreSQL and MariaDB spawned by these tests, SQLite files.

As for Redis (`tests.faults.test_redis_faults`): a `tests.faults.load.Load`
runs on one executor while the fault is injected; only `BackendUnavailable`
may come out, no answer may be wrong, no acknowledged write may be lost, and
the same executor must answer again by itself. Figures are printed (``-s``).
The servers are never the machine's shared ones: killing their connections or
restarting them would break everybody else's tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import stateful
from stateful import StatefulExecutor
from stateful.backends.sql import migrate_url
from tests.faults.load import DEEP, scaled, under_fault
from tests.sql_backend.fixtures import run_blocking
from tests.sql_backend.servers import (
    MariaDBProcess,
    PostgresProcess,
    mariadb_binaries,
    postgres_binaries,
)
from tests.support import server_missing

PREFIX = "faults_"
#: Limit per operation, so a call stuck on a dead connection ends as BackendUnavailable.
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def spawned_postgres() -> Iterator[PostgresProcess]:
    """A PostgreSQL server of this module's own, migrated for `PREFIX`."""
    if postgres_binaries() is None:
        server_missing("the PostgreSQL fault tests spawn initdb/postgres, not on PATH")
    server = PostgresProcess()
    try:
        run_blocking(migrate_url(server.url, table_prefix=PREFIX))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spawned_mariadb() -> Iterator[MariaDBProcess]:
    """A MariaDB server of this module's own, migrated for `PREFIX`."""
    if mariadb_binaries() is None:
        server_missing("the MariaDB fault tests spawn mariadb-install-db/mariadbd, not on PATH")
    server = MariaDBProcess()
    try:
        run_blocking(migrate_url(server.url, table_prefix=PREFIX))
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_executor(spawned_postgres: PostgresProcess) -> AsyncIterator[StatefulExecutor]:
    """An executor on the spawned PostgreSQL server."""
    async with stateful.connect(
        spawned_postgres.url, table_prefix=PREFIX, timeout=TIMEOUT
    ) as executor:
        yield executor


async def _admin(url: str, statement: str) -> list[int]:
    """Run ``statement`` on a connection of its own; return the first column of its rows."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(statement))
            return [int(row[0]) for row in result]
    finally:
        await engine.dispose()


async def test_pg_terminate_backend_of_the_pools_connections(
    spawned_postgres: PostgresProcess, postgres_executor: StatefulExecutor
) -> None:
    terminated: list[int] = []

    async def terminate() -> None:
        rows = await _admin(
            spawned_postgres.url,
            "SELECT pg_terminate_backend(pid)::int FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        terminated.append(len(rows))

    await under_fault(
        postgres_executor,
        "postgresql pg_terminate_backend",
        terminate,
        rounds=scaled(4, 30),
        settle=0.5,
    )
    print(f"[faults] postgresql: connections terminated per round {terminated}")
    assert sum(terminated) > 0, "no connection of the pool was terminated"


async def test_pg_fast_restart(
    spawned_postgres: PostgresProcess, postgres_executor: StatefulExecutor
) -> None:
    downtimes: list[float] = []

    async def restart() -> None:
        started = time.monotonic()
        await asyncio.to_thread(spawned_postgres.restart, 0.3)
        downtimes.append(time.monotonic() - started)

    figures = await under_fault(
        postgres_executor, "postgresql fast restart", restart, rounds=scaled(2, 10)
    )
    print(f"[faults] postgresql restart: seconds down {[round(d, 2) for d in downtimes]}")
    assert figures.failed > 0, "the load never met the restarting server"


async def test_mariadb_kill_of_the_pools_connections(spawned_mariadb: MariaDBProcess) -> None:
    killed: list[int] = []

    async def kill() -> None:
        engine = create_async_engine(spawned_mariadb.url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                ids = (
                    await conn.execute(
                        text(
                            "SELECT id FROM information_schema.processlist"
                            " WHERE id <> CONNECTION_ID() AND command <> 'Daemon'"
                            " AND user <> 'system user'"
                        )
                    )
                ).scalars().all()
                for connection_id in ids:
                    try:
                        await conn.execute(text(f"KILL CONNECTION {int(connection_id)}"))
                    except Exception:  # it may have closed meanwhile: "Unknown thread id"
                        continue
                killed.append(len(ids))
        finally:
            await engine.dispose()

    async with stateful.connect(
        spawned_mariadb.url, table_prefix=PREFIX, timeout=TIMEOUT
    ) as executor:
        await under_fault(
            executor, "mariadb KILL CONNECTION", kill, rounds=scaled(4, 30), settle=0.5
        )
    print(f"[faults] mariadb: connections killed per round {killed}")
    assert sum(killed) > 0, "no connection of the pool was killed"


HOLD_EXCLUSIVE = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
conn.close()
"""


async def test_sqlite_second_process_holding_begin_exclusive(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}"
    await migrate_url(url, table_prefix=PREFIX)
    hold = 15.0 if DEEP else 4.0
    held: list[float] = []

    async def lock_the_file() -> None:
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_EXCLUSIVE, str(tmp_path / "faults.db"), str(hold),
            stdout=subprocess.PIPE,
        )
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 35)
        assert line.strip() == b"locked", line
        started = time.monotonic()
        await asyncio.wait_for(holder.wait(), hold + 30)
        assert holder.returncode == 0
        held.append(time.monotonic() - started)

    # timeout=2 < the lock: calls waiting for it end as BackendUnavailable.
    async with stateful.connect(url, table_prefix=PREFIX, timeout=2.0) as executor:
        figures = await under_fault(
            executor, "sqlite BEGIN EXCLUSIVE in another process", lock_the_file,
            rounds=scaled(1, 3), settle=1.0,
        )
    print(f"[faults] sqlite: seconds the other process held the lock {held}")
    assert figures.failed > 0, "no call met the lock: the fault was not injected"
