"""Latency of the SQL backend vs the raw driver running the same statements.

Not a test. Run::

    .venv/bin/python -m benchmarks.sql_bench [--n N] [--postgres URL] [--mysql URL]

For each database (a SQLite file in a temporary directory, PostgreSQL and
MariaDB if they answer), it fills 1,000 links, then times sequential calls of
a few operations through `stateful` (executor, validation, SQLAlchemy Core,
retry loop) and through the bare driver (aiosqlite, asyncpg, asyncmy) issuing
the very statements the backend issues (compiled from its own statement
objects), with the same transaction framing: a lone statement on its own in
autocommit (SQLite: reads only), several between BEGIN and COMMIT. The two
sides alternate in rounds; it prints the median µs per call and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite
import asyncmy
import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler

from stateful import StatefulExecutor, SystemClock
from stateful.backends.sql import SQLBackend, from_url, migrate_url
from stateful.backends.sql.dialects.base import Dialect, LinkId
from stateful.backends.sql.keys import link_key, owner_key, service_key

Call = Callable[[int], Awaitable[object]]
NS, SVC, LINKS, BATCH = "bench", "game", 1000, 100
PREFIX = "bench_"


def compile_once(
    stmt: ClauseElement, dialect: SADialect, sample: dict[str, Any]
) -> tuple[str, list[str]]:
    """Compile ``stmt`` as the backend would: SQL text and the order of its parameters."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    return compiled.string, list(compiled.positiontup or [])


def link(uid: str) -> LinkId:
    return LinkId(link_key(NS, uid, SVC), owner_key(NS, uid), NS, uid, SVC)


Statement = tuple[str, list[Any]]


class Raw:
    """The backend's statements, compiled once, run on one bare driver connection."""

    def __init__(self, d: Dialect, batch_uids: list[str]) -> None:
        self.d = d
        self.sa = d.engine.dialect
        sample = {**d.link_params(link("x"), 1, None), "now": 0}
        self.locked = compile_once(d.select_link_locked, self.sa, sample)
        self.update = compile_once(d.update_link, self.sa, sample)
        self.try_set = compile_once(d.try_set_statement, self.sa, sample)
        self.live_pod = compile_once(d.select_live_pod, self.sa, sample)
        state_sample = {
            "b_service_key": service_key(NS, SVC),
            "b_pod": 1,
            "b_namespace": NS,
            "b_service": SVC,
            "b_state": "ready",
        }
        self.state_params = state_sample
        self.upsert_state = compile_once(d.upsert_pod_state, self.sa, state_sample)
        keys = [link_key(NS, uid, SVC) for uid in batch_uids]
        # An IN list (SQLite, MariaDB) expands to one parameter per key; an array does not.
        compiled = d.select_live_batch.compile(dialect=self.sa)
        state = compiled.construct_expanded_state({"keys": keys, "now": 0})
        self.batch_params: dict[str, Any] = dict(state.parameters)
        self.batch = (state.statement, list(state.positiontup or []))

    @staticmethod
    def bind(prepared: tuple[str, list[str]], params: dict[str, Any]) -> Statement:
        sql, names = prepared
        return sql, [params[name] for name in names]

    async def read(self, statements: Sequence[Statement]) -> list[Any]:
        return await self.run(statements, write=False)

    async def write(self, statements: Sequence[Statement]) -> list[Any]:
        return await self.run(statements, write=True)

    async def run(self, statements: Sequence[Statement], *, write: bool) -> list[Any]:
        """Run ``statements`` framed as the backend frames them."""
        raise NotImplementedError

    async def set_linked_pod(self, uid: str, pod: int, now: int) -> object:
        """Lock, then update (the backend's path for an existing link)."""
        p = self.d.link_params(link(uid), pod, None)
        return await self.write([self.bind(self.locked, p), self.bind(self.update, p)])

    async def try_set_linked_pod(self, uid: str, pod: int, now: int) -> object:
        p = {**self.d.link_params(link(uid), pod, None), "now": now}
        statements = [self.bind(self.try_set, p)]
        if self.sa.name in ("mysql", "mariadb"):
            statements.append(self.bind(self.locked, p))
        return await self.write(statements)

    async def get_linked_pod(self, uid: str, now: int) -> object:
        p = {"b_link_key": link_key(NS, uid, SVC), "now": now}
        return await self.read([self.bind(self.live_pod, p)])

    async def batch_get_linked_pod(self, now: int) -> object:
        return await self.read([self.bind(self.batch, {**self.batch_params, "now": now})])

    async def set_service_state(self, pod: int, state: str) -> object:
        p = {**self.state_params, "b_pod": pod, "b_state": state}
        return await self.write([self.bind(self.upsert_state, p)])


class RawSQLite(Raw):
    """aiosqlite in autocommit mode: a lone read, else BEGIN [IMMEDIATE] / COMMIT."""

    conn: aiosqlite.Connection

    async def open(self, path: str) -> None:
        self.conn = await aiosqlite.connect(path, isolation_level=None)
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=NORMAL")

    async def run(self, statements: Sequence[Statement], *, write: bool) -> list[Any]:
        lone = len(statements) == 1 and not write
        if not lone:
            await self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        rows = [await (await self.conn.execute(sql, args)).fetchall() for sql, args in statements]
        if not lone:
            await self.conn.execute("COMMIT")
        return rows

    async def close(self) -> None:
        await self.conn.close()


class RawPostgres(Raw):
    """asyncpg: one statement in autocommit, several in a transaction, as the backend."""

    conn: asyncpg.Connection

    async def open(self, url: str) -> None:
        u = make_url(url)
        self.conn = await asyncpg.connect(
            host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
        )

    async def run(self, statements: Sequence[Statement], *, write: bool) -> list[Any]:
        if len(statements) == 1:
            sql, args = statements[0]
            return [await self.conn.fetch(sql, *args)]
        async with self.conn.transaction():
            return [await self.conn.fetch(sql, *args) for sql, args in statements]

    async def close(self) -> None:
        await self.conn.close()


class RawMySQL(Raw):
    """asyncmy, autocommit, READ COMMITTED: a lone statement, else START TRANSACTION / COMMIT."""

    conn: Any

    async def open(self, url: str) -> None:
        u = make_url(url)
        self.conn = await asyncmy.connect(
            host=u.host,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            database=u.database,
            charset="utf8mb4",
            autocommit=True,
        )
        async with self.conn.cursor() as cur:
            await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    async def run(self, statements: Sequence[Statement], *, write: bool) -> list[Any]:
        rows = []
        lone = len(statements) == 1
        async with self.conn.cursor() as cur:
            if not lone:
                await cur.execute("START TRANSACTION")
            for sql, args in statements:
                await cur.execute(sql, args)
                rows.append(await cur.fetchall())
            if not lone:
                await cur.execute("COMMIT")
        return rows

    async def close(self) -> None:
        self.conn.close()


ROUNDS = 10


async def timed(n: int, call: Call) -> float:
    """Return the mean seconds per call over ``n`` sequential calls."""
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - start) / n


async def compared(n: int, ours: Call, theirs: Call) -> tuple[float, float]:
    """Return the seconds per call of each, the median of `ROUNDS` alternating rounds.

    Alternating keeps load from elsewhere on the machine (which comes and
    goes) from landing on one side only.
    """
    per_round = max(n // ROUNDS, 1)
    mine: list[float] = []
    base: list[float] = []
    for r in range(ROUNDS):
        if r % 2:
            mine.append(await timed(per_round, ours))
            base.append(await timed(per_round, theirs))
        else:
            base.append(await timed(per_round, theirs))
            mine.append(await timed(per_round, ours))
    return statistics.median(mine), statistics.median(base)


async def bench(
    label: str, url: str, kind: type[RawSQLite | RawPostgres | RawMySQL], n: int
) -> None:
    """Print the table of one database."""
    await migrate_url(url, table_prefix=PREFIX)
    backend = from_url(url, table_prefix=PREFIX)
    assert isinstance(backend, SQLBackend)
    ex = StatefulExecutor(backend)
    uids = [f"user-{i}" for i in range(LINKS)]
    for i, uid in enumerate(uids):
        await ex.set_linked_pod(NS, uid, SVC, i % 8, -1)
    raw = kind(backend.dialect, uids[:BATCH])
    await raw.open(url if not url.startswith("sqlite") else str(make_url(url).database))
    clock = SystemClock()  # the backend's default clock too
    cases: dict[str, tuple[Call, Call]] = {
        "get_linked_pod": (
            lambda i: ex.get_linked_pod(NS, uids[i % LINKS], SVC),
            lambda i: raw.get_linked_pod(uids[i % LINKS], clock.now_ms()),
        ),
        "set_linked_pod": (
            lambda i: ex.set_linked_pod(NS, uids[i % LINKS], SVC, i % 8, -1),
            lambda i: raw.set_linked_pod(uids[i % LINKS], i % 8, clock.now_ms()),
        ),
        "try_set_linked_pod": (
            lambda i: ex.try_set_linked_pod(NS, uids[i % LINKS], SVC, i % 8, -1),
            lambda i: raw.try_set_linked_pod(uids[i % LINKS], i % 8, clock.now_ms()),
        ),
        f"batch_get_linked_pod({BATCH})": (
            lambda i: ex.batch_get_linked_pod(NS, uids[:BATCH], SVC),
            lambda i: raw.batch_get_linked_pod(clock.now_ms()),
        ),
        "set_service_state": (
            lambda i: ex.set_service_state(NS, SVC, i % 8, "ready"),
            lambda i: raw.set_service_state(i % 8, "ready"),
        ),
    }
    print(f"\n{label}")
    print(f"{'operation':28} {'stateful µs':>12} {'raw µs':>9} {'ratio':>6}")
    for name, (ours, theirs) in cases.items():
        await timed(max(n // 10, 10), theirs)  # warm up both (prepared statements, caches)
        await timed(max(n // 10, 10), ours)
        mine, base = await compared(n, ours, theirs)
        print(f"{name:28} {mine * 1e6:12.0f} {base * 1e6:9.0f} {mine / base:6.2f}")
    await raw.close()
    await ex.aclose()


async def main(n: int, postgres: str, mysql: str) -> None:
    """Run the benchmark on every database that answers."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await bench("SQLite (file, WAL) via aiosqlite", url, RawSQLite, n)
    servers: list[tuple[str, str, type[RawPostgres | RawMySQL]]] = [
        ("PostgreSQL via asyncpg", postgres, RawPostgres),
        ("MariaDB via asyncmy", mysql, RawMySQL),
    ]
    for label, url, kind in servers:
        try:
            await bench(label, url, kind, n)
        except OSError as exc:
            print(f"\n{label}: skipped ({exc})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="calls per operation")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--mysql", default="mysql+asyncmy://root@127.0.0.1:3306/test")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.postgres, args.mysql))
