"""Throughput probe of the SQL backend against the raw driver (not a test).

Run::

    .venv/bin/python -m tests.sql_backend.perf_probe [--seconds S] [--rounds R]
        [--postgres URL] [--mysql URL] [--pool SIZE:OVERFLOW ...]

For PostgreSQL (asyncpg), MariaDB (asyncmy; no raw side) and a SQLite file (aiosqlite),
at concurrency 1, 10 and 64: ``get_linked_pod`` and ``set_linked_pod`` through
a `StatefulExecutor`, and the minimal raw equivalent on the driver's own pool
(one ``SELECT``; one upsert), plus (PostgreSQL) both as they ran before
(`before_ops`), in interleaved
rounds of ``--seconds`` each; prints the median operations per second and the ratio stateful / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import make_url

from stateful import StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url, migrate_url
from stateful.backends.sql.dialects.base import Dialect
from stateful.backends.sql.keys import link_key, owner_key, service_key

PREFIX = "probe_"
NS, SVC, UIDS = "probe", "svc", 1000

Op = Callable[[int], Awaitable[object]]


async def throughput(op: Op, concurrency: int, seconds: float) -> float:
    """Run ``op`` from ``concurrency`` tasks for ``seconds``; return calls per second."""
    done = 0
    stop = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.monotonic() < stop:
            await op(i)
            i += concurrency
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.monotonic() - started)


class RawPostgres:
    """asyncpg pool, the statements a hand-written store would send."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.t = f"{prefix}links"

    async def open(self, size: int) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=size, max_size=size)

    async def get(self, i: int) -> object:
        return await self.pool.fetchval(
            f"SELECT pod FROM {self.t} WHERE link_key = $1 AND (expires_at IS NULL OR "
            "expires_at > $2)",
            link_key(NS, f"u{i % UIDS}", SVC),
            int(time.time() * 1000),
        )

    async def set(self, i: int) -> object:
        uid = f"u{i % UIDS}"
        return await self.pool.execute(
            f"INSERT INTO {self.t} (link_key, owner_key, namespace, uid, service, pod, "
            "expires_at, service_key, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) "
            "ON CONFLICT (link_key) DO UPDATE SET pod = excluded.pod, expires_at = NULL, "
            "updated_at = excluded.updated_at",
            link_key(NS, uid, SVC),
            owner_key(NS, uid),
            NS,
            uid,
            SVC,
            i % 8,
            service_key(NS, SVC),
            int(time.time() * 1000),
        )

    async def close(self) -> None:
        await self.pool.close()


class RawSQLite(RawPostgres):
    """One aiosqlite connection in autocommit: a SELECT; an upsert committed on its own."""

    def __init__(self, url: str, prefix: str) -> None:
        self.path = make_url(url).database or ""
        self.t = f"{prefix}links"

    async def open(self, size: int) -> None:
        import aiosqlite

        self.conn = await aiosqlite.connect(self.path, isolation_level=None)

    async def get(self, i: int) -> object:
        return await self.conn.execute_fetchall(
            f"SELECT pod FROM {self.t} WHERE link_key = ? AND (expires_at IS NULL OR "
            "expires_at > ?)",
            (link_key(NS, f"u{i % UIDS}", SVC), int(time.time() * 1000)),
        )

    async def set(self, i: int) -> object:
        uid = f"u{i % UIDS}"
        return await self.conn.execute_fetchall(
            f"INSERT INTO {self.t} (link_key, owner_key, namespace, uid, service, pod, "
            "expires_at, service_key, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?) "
            "ON CONFLICT (link_key) DO UPDATE SET pod = excluded.pod, expires_at = NULL, "
            "updated_at = excluded.updated_at",
            (
                link_key(NS, uid, SVC),
                owner_key(NS, uid),
                NS,
                uid,
                SVC,
                i % 8,
                service_key(NS, SVC),
                int(time.time() * 1000),
            ),
        )

    async def close(self) -> None:
        await self.conn.close()


def stateful_ops(ex: StatefulExecutor) -> dict[str, Op]:
    """The two operations through the executor."""

    async def get(i: int) -> object:
        return await ex.get_linked_pod(NS, f"u{i % UIDS}", SVC)

    async def set_(i: int) -> object:
        return await ex.set_linked_pod(NS, f"u{i % UIDS}", SVC, i % 8, -1)

    return {"get stateful": get, "set stateful": set_}


def before_ops(ex: StatefulExecutor) -> dict[str, Op]:
    """As it was before, for comparison in the same run: `get_linked_pod` through
    SQLAlchemy's execution layer (not the driver's own), and on PostgreSQL
    `set_linked_pod` as BEGIN; SELECT ... FOR UPDATE; UPDATE or INSERT; COMMIT."""
    backend = ex.backend
    assert isinstance(backend, SQLBackend)
    dialect = backend.dialect
    dialect.get_linked_pod = types.MethodType(Dialect.get_linked_pod, dialect)  # type: ignore[method-assign]
    if backend.engine.dialect.name == "postgresql":
        dialect.set_linked_pod = types.MethodType(Dialect.set_linked_pod, dialect)  # type: ignore[method-assign]
        dialect.single_statement = dialect.single_statement - {"set_linked_pod"}  # type: ignore[misc]

    async def get(i: int) -> object:
        return await ex.get_linked_pod(NS, f"u{i % UIDS}", SVC)

    async def set_(i: int) -> object:
        return await ex.set_linked_pod(NS, f"u{i % UIDS}", SVC, i % 8, -1)

    return {"get before": get, "set before": set_}


async def probe(url: str, label: str, seconds: float, rounds: int, pools: list[str]) -> None:
    """Print the table for one database."""
    await migrate_url(url, table_prefix=PREFIX)
    raw: RawPostgres | None = None
    if url.startswith("postgresql"):
        raw = RawPostgres(url, PREFIX)
    elif url.startswith("sqlite"):
        raw = RawSQLite(url, PREFIX)
    for pool in pools:
        size, overflow = (int(x) for x in pool.split(":"))
        options: dict[str, Any] = {"table_prefix": PREFIX}
        if not url.startswith("sqlite"):
            options |= {"pool_size": size, "max_overflow": overflow}
        ex = StatefulExecutor(from_url(url, **options))
        old = StatefulExecutor(from_url(url, **options)) if raw is not None else None
        before = before_ops(old) if old is not None else {}
        for i in range(UIDS):
            await ex.set_linked_pod(NS, f"u{i}", SVC, i % 8, -1)
        if raw is not None:
            await raw.open(size)
        for concurrency in (1, 10, 64):
            cases: dict[str, list[float]] = {}
            for _ in range(rounds):
                ops = stateful_ops(ex)
                if raw is not None:
                    ops |= {"get raw": raw.get, "set raw": raw.set, **before}
                for name, op in ops.items():
                    cases.setdefault(name, []).append(await throughput(op, concurrency, seconds))
            med = {name: statistics.median(v) for name, v in cases.items()}
            line = ", ".join(f"{name} {value:7.0f}/s" for name, value in med.items())
            if raw is not None:
                line += (
                    f" | ratio get {med['get stateful'] / med['get raw']:.2f}"
                    f" set {med['set stateful'] / med['set raw']:.2f}"
                )
            print(f"{label} pool {pool} c={concurrency:2d}: {line}", flush=True)
        await ex.aclose()
        if old is not None:
            await old.aclose()
        if raw is not None:
            await raw.close()


def main() -> None:
    """Parse the options and run the probes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/stateful_test"
    )
    parser.add_argument("--mysql", default="mysql+asyncmy://root@127.0.0.1:3306/stateful_test")
    parser.add_argument("--pool", nargs="*", default=["10:0"])
    parser.add_argument("--only", choices=["postgresql", "mariadb", "sqlite"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = {
            "postgresql": args.postgres,
            "mariadb": args.mysql,
            "sqlite": f"sqlite+aiosqlite:///{tmp}/probe.db",
        }
        for label, url in targets.items():
            if args.only in (None, label):
                asyncio.run(probe(url, label, args.seconds, args.rounds, args.pool))


if __name__ == "__main__":
    main()
