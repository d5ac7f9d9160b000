"""Load held: 10,000 concurrent calls on one executor all succeed, on every backend.

A router has far more requests in flight than a pool has connections: the
pool must make callers wait for a connection, not fail them. And when that
wait outlasts the operation's timeout, the caller gets `stateful.PoolExhausted`
(nothing was sent: the call certainly did not happen), never a plain
`BackendUnavailable` that leaves the outcome unknown.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from stateful import Backend, ManualClock, StatefulExecutor
from stateful.backends.redis import from_url as redis_from_url
from stateful.backends.sql import from_url as sql_from_url
from stateful.backends.sql import migrate_url
from stateful.errors import PoolExhausted
from tests.faults.load import scaled
from tests.matrix import BACKENDS, StoreFactory
from tests.redis_backend.servers import RedisProcess, redis_server_binary
from tests.sql_backend import endpoints
from tests.support import server_missing

CONCURRENT = 10_000
PODS = 64


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ten_thousand_concurrent_calls_on_one_executor(
    backend: str, request: pytest.FixtureRequest
) -> None:
    factory: StoreFactory = request.getfixturevalue(f"{backend}_store_factory")
    executor = StatefulExecutor(await factory(ManualClock()))
    ns = f"load-{uuid.uuid4().hex[:8]}"
    half = CONCURRENT // 2
    uids = [f"user-{n}" for n in range(half)]
    try:
        for wave in range(scaled(1, 5)):
            # Half the calls (re)link each uid, the other half read it at the
            # same time: a read sees the link before or after its write.
            pod = [(n + wave) % PODS for n in range(half)]
            before = [None if wave == 0 else (n + wave - 1) % PODS for n in range(half)]
            started = time.monotonic()
            answers = await asyncio.gather(
                *(executor.set_linked_pod(ns, u, "game", pod[n], -1) for n, u in enumerate(uids)),
                *(executor.get_linked_pod(ns, uid, "game") for uid in uids),
                return_exceptions=True,
            )
            seconds = time.monotonic() - started
            failures = [a for a in answers if isinstance(a, BaseException)]
            print(
                f"[load] {backend}: wave {wave + 1}: {CONCURRENT} concurrent calls "
                f"({half} set_linked_pod + {half} get_linked_pod) in {seconds:.2f} s, "
                f"failed {len(failures)}"
            )
            assert not failures, f"{len(failures)} calls failed, e.g. {failures[0]!r}"
            assert answers[:half] == before
            wrong = [
                (uid, read)
                for n, (uid, read) in enumerate(zip(uids, answers[half:], strict=True))
                if read not in (before[n], pod[n])
            ]
            assert not wrong, wrong[:5]
            stored = await executor.batch_get_linked_pod(ns, uids, "game")
            assert {uid: p for p, members in stored.items() for uid in members} == dict(
                zip(uids, pod, strict=True)
            )
    finally:
        await executor.aclose()


# -- a pool wait longer than the timeout ---------------------------------------------

TIMEOUT = 0.5
#: How long the only connection stays busy: well past TIMEOUT.
BUSY = 2.0

#: Blocks the store from a connection of its own for `BUSY` seconds from entry;
#: its exit returns once the block is over.
Blocker = Callable[[], AbstractAsyncContextManager[None]]


async def _until_over(entered: float) -> None:
    await asyncio.sleep(max(0.0, entered + BUSY - time.monotonic()))


async def _pool_wait_outlasts_timeout(backend: Backend, busy: Blocker) -> None:
    """Keep the pool's only connection busy; the next call must be `PoolExhausted`.

    The call holding the connection runs on an executor without timeout over
    the same backend, so it keeps the connection for the whole block.
    """
    holder = StatefulExecutor(backend)
    executor = StatefulExecutor(backend, timeout=TIMEOUT)
    ns = f"pool-{uuid.uuid4().hex[:8]}"
    try:
        # Connect (and on SQL check the schema) before the block.
        await executor.get_linked_pod(ns, "warm-up", "game")
        async with busy():
            first = asyncio.create_task(holder.set_linked_pod(ns, "first", "game", 1, -1))
            await asyncio.sleep(0.2)  # the first call has the connection, stuck behind the block
            started = time.monotonic()
            with pytest.raises(PoolExhausted) as waited:
                await executor.set_linked_pod(ns, "second", "game", 2, -1)
            seconds = time.monotonic() - started
        # The block is over: the first call, which did reach the store, completes.
        assert await first is None
        print(
            f"[pool] {type(backend).__name__}: pool wait > timeout={TIMEOUT} s gave "
            f"PoolExhausted after {seconds:.2f} s: {waited.value}"
        )
        assert seconds <= TIMEOUT + 1.0
        # Nothing was sent, and nothing is sent later either: with the pool
        # free again, the second write has still not happened.
        await asyncio.sleep(0.5)
        assert await executor.get_linked_pod(ns, "first", "game") == 1
        assert await executor.get_linked_pod(ns, "second", "game") is None
    finally:
        await executor.aclose()
        await holder.aclose()


@pytest.fixture
def paused_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A spawned server: CLIENT PAUSE would stall everybody on a shared one."""
    if redis_server_binary() is None:
        server_missing("the pool-wait test spawns redis-server, which is not on PATH")
    server = RedisProcess(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


async def test_redis_pool_wait_past_timeout_is_pool_exhausted(paused_redis: RedisProcess) -> None:
    @asynccontextmanager
    async def pause() -> AsyncIterator[None]:
        entered = time.monotonic()
        with paused_redis.client() as admin:
            admin.execute_command("CLIENT PAUSE", int(BUSY * 1000), "ALL")
        yield
        await _until_over(entered)

    await _pool_wait_outlasts_timeout(redis_from_url(paused_redis.url, max_connections=1), pause)


SQL_URL_FIXTURES = {
    "sqlite": "sqlite_file_url",
    "postgresql": "postgres_url",
    "mariadb": "mysql_url",
}


def _table_lock(url: str, prefix: str) -> Blocker:
    """A context manager holding a lock on the links table from a connection of its own."""
    if url.startswith("sqlite"):
        path = url.partition(":///")[2]

        @asynccontextmanager
        async def exclusive() -> AsyncIterator[None]:
            entered = time.monotonic()
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")
            try:
                yield
                await _until_over(entered)
            finally:
                conn.execute("ROLLBACK")
                conn.close()

        return exclusive

    lock = (
        f"LOCK TABLE {prefix}links IN ACCESS EXCLUSIVE MODE"
        if url.startswith("postgresql")
        else f"LOCK TABLES {prefix}links WRITE"
    )

    @asynccontextmanager
    async def locked() -> AsyncIterator[None]:
        entered = time.monotonic()
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(lock))
                try:
                    yield
                    await _until_over(entered)
                finally:
                    if not url.startswith("postgresql"):
                        await conn.execute(text("UNLOCK TABLES"))
                    await conn.rollback()
        finally:
            await engine.dispose()

    return locked


@pytest.mark.parametrize("database", list(SQL_URL_FIXTURES))
async def test_sql_pool_wait_past_timeout_is_pool_exhausted(
    database: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(SQL_URL_FIXTURES[database])
    await migrate_url(url, table_prefix=endpoints.PREFIX)
    backend = sql_from_url(url, table_prefix=endpoints.PREFIX, pool_size=1, max_overflow=0)
    await _pool_wait_outlasts_timeout(backend, _table_lock(url, endpoints.PREFIX))

