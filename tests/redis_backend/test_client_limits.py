"""Bounds of the Redis clients built from URLs: load, pool waits, stalls, close, options."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis, RedisCluster

from stateful import BackendUnavailable, PoolExhausted, StatefulExecutor, ValidationError, connect
from stateful.backends.redis.client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    BoundedConnectionPool,
    BoundedRedisCluster,
    BoundedSentinelPool,
    CancelSafeSend,
)
from stateful.backends.redis.urls import client_from_url
from tests.redis_backend.scratch import delete_prefix
from tests.redis_backend.servers import SentinelProcesses
from tests.redis_backend.test_client_cancel import make_backend

NS, SVC = "ns", "svc"


# -- load held -------------------------------------------------------------------------


async def test_ten_thousand_concurrent_calls_on_one_executor(any_redis_url: str) -> None:
    """More calls than connections, from a cold client: they wait instead of failing.

    Cold matters on a cluster: the burst arrives before the client has
    discovered the cluster (a discovery racing the burst used to drop
    connections under running commands, which failed and re-sent writes).
    """
    backend = make_backend(any_redis_url)
    executor = StatefulExecutor(backend)
    uids = [f"u{i}" for i in range(5000)]
    try:
        started = time.monotonic()
        calls = [executor.set_linked_pod(NS, uid, SVC, i % 50, -1) for i, uid in enumerate(uids)]
        calls += [executor.get_linked_pod(NS, uid, SVC) for uid in uids]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 120)
        elapsed = time.monotonic() - started
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], failures[:3]
        # Each write ran once: none saw a link before it (a re-sent write would).
        assert results[:5000] == [None] * 5000
        assert all(read in (None, i % 50) for i, read in enumerate(results[5000:]))
        stored = await executor.batch_get_linked_pod(NS, uids, SVC)
        assert {uid: pod for pod, members in stored.items() for uid in members} == {
            uid: i % 50 for i, uid in enumerate(uids)
        }
        scheme = any_redis_url.partition(":")[0]
        print(f"\n10000 concurrent calls on {scheme}: {elapsed:.2f} s, 0 failed")
    finally:
        await delete_prefix(backend.client, backend.keys.prefix)
        await executor.aclose()


async def test_a_pool_wait_that_runs_out_is_pool_exhausted(any_redis_url: str) -> None:
    """Every connection busy for longer than ``pool_timeout``: PoolExhausted, nothing sent."""
    backend = make_backend(any_redis_url, max_connections=2, pool_timeout=0.05)
    client = backend.client
    assert isinstance(client, BoundedRedisCluster | Redis)
    slots = client.slots if isinstance(client, BoundedRedisCluster) else _pool(client).slots
    executor = StatefulExecutor(backend)
    try:
        # Hold both connections' slots, as two slow calls would.
        await slots.acquire()
        await slots.acquire()
        started = time.monotonic()
        with pytest.raises(PoolExhausted, match="nothing was sent"):
            await executor.set_linked_pod(NS, "late", SVC, 1, -1)
        assert 0.04 < time.monotonic() - started < 1.0
        slots.release()
        assert await executor.set_linked_pod(NS, "late", SVC, 1, -1) is None
        slots.release()
        assert await executor.get_linked_pod(NS, "late", SVC) == 1
    finally:
        await delete_prefix(backend.client, backend.keys.prefix)
        await executor.aclose()


async def test_an_operation_timeout_in_the_pool_wait_is_pool_exhausted(
    any_redis_url: str,
) -> None:
    """The executor's timeout expiring while waiting for a connection: PoolExhausted."""
    backend = make_backend(any_redis_url, max_connections=1, pool_timeout=None)
    client = backend.client
    slots = client.slots if isinstance(client, BoundedRedisCluster) else _pool(client).slots
    executor = StatefulExecutor(backend, timeout=0.1)
    try:
        await slots.acquire()
        with pytest.raises(PoolExhausted, match="nothing was sent"):
            await executor.set_linked_pod(NS, "late", SVC, 1, -1)
        slots.release()
        assert slots.free == 1  # the cancelled waiter took nothing
        # Without the hasty timeout: a cluster client's first command also
        # discovers the cluster, which may take longer than 0.1 s.
        assert await StatefulExecutor(backend).get_linked_pod(NS, "late", SVC) is None
    finally:
        await delete_prefix(backend.client, backend.keys.prefix)
        await executor.aclose()


def _pool(client: Redis | RedisCluster) -> BoundedConnectionPool:
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, BoundedConnectionPool)
    return pool


# -- stalled server ---------------------------------------------------------------------


@dataclass
class StalledServer:
    """A loopback server that accepts connections and never answers."""

    port: int = 0
    opened: int = 0
    closed: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read (and ignore) until the client goes away."""
        self.opened += 1
        self.writers.append(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.closed += 1


@pytest.fixture
async def stalled() -> AsyncIterator[StalledServer]:
    """A `StalledServer` on a free loopback port."""
    server = StalledServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        for writer in server.writers:
            writer.transport.abort()
        listener.close()
        await listener.wait_closed()


async def test_calls_on_a_stalled_server_end_within_the_timeout(stalled: StalledServer) -> None:
    """Executor timeout 0.3 s: each call ends by then; aclose() returns at once."""
    executor = StatefulExecutor(make_backend(f"redis://127.0.0.1:{stalled.port}/0"), timeout=0.3)
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await executor.get_linked_pod(NS, "u", SVC)
            assert time.monotonic() - started < 0.3 + 0.2
    finally:
        started = time.monotonic()
        await executor.aclose()
        closing = time.monotonic() - started
    assert closing < 0.5
    await _until(lambda: stalled.closed == stalled.opened)
    assert stalled.opened >= 1


async def test_socket_timeout_bounds_a_call_without_executor_timeout(
    stalled: StalledServer,
) -> None:
    """No executor timeout: the socket timeout ends the call (BackendUnavailable)."""
    executor = StatefulExecutor(
        make_backend(f"redis://127.0.0.1:{stalled.port}/0?socket_timeout=0.3")
    )
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await executor.set_linked_pod(NS, "u", SVC, 1, -1)
        assert time.monotonic() - started < 0.3 + 0.4
    finally:
        await executor.aclose()


async def test_aclose_cancelled_drops_every_connection(stalled: StalledServer) -> None:
    """Calls stuck on a stalled server; aclose() under a tiny bound still drops the sockets."""
    backend = make_backend(f"redis://127.0.0.1:{stalled.port}/0", socket_timeout=30)
    executor = StatefulExecutor(backend, close_timeout=0.2)
    stuck = [asyncio.ensure_future(executor.get_linked_pod(NS, f"u{i}", SVC)) for i in range(5)]
    await _until(lambda: stalled.opened == 5)
    started = time.monotonic()
    await executor.aclose()
    assert time.monotonic() - started < 0.2 + 0.3
    results = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(r, BaseException) for r in results), results
    await _until(lambda: stalled.closed == 5)


async def _until(condition: object, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "redis://127.0.0.1:1/0",
        "unix:///tmp/none.sock",
        "redis+cluster://127.0.0.1:1",
        "redis+sentinel://127.0.0.1:1/mymaster",
    ],
)
def test_unknown_options_are_rejected_at_connect(address: str) -> None:
    """Misspelt options fail at once, naming them, whether keyword or query."""
    with pytest.raises(ValidationError, match="socket_timout") as caught:
        connect(address, socket_timout=1)
    assert caught.value.argument == "options"
    glue = "&" if "?" in address else "?"
    with pytest.raises(ValidationError, match="'colour', 'flavour'"):
        connect(f"{address}{glue}flavour=x&colour=y")


def test_known_options_and_defaults() -> None:
    """Defaults are set, redis-py's own options pass, query options win."""
    client, _ = client_from_url("redis://h/0?socket_timeout=1.5", client_name="router")
    assert isinstance(client, Redis)
    pool = _pool(client)
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5
    assert kwargs["socket_connect_timeout"] == DEFAULT_CONNECT_TIMEOUT
    assert kwargs["client_name"] == "router"
    assert pool.max_connections == DEFAULT_MAX_CONNECTIONS
    assert pool.slots.timeout == DEFAULT_POOL_TIMEOUT
    client, _ = client_from_url("redis://h?max_connections=7&pool_timeout=0.5")
    assert (_pool(client).max_connections, _pool(client).slots.timeout) == (7, 0.5)
    cluster, _ = client_from_url("redis+cluster://h:7000", max_connections=9, pool_timeout=None)
    assert isinstance(cluster, BoundedRedisCluster)
    assert (cluster.slots.limit, cluster.slots.timeout) == (9, None)
    options = cluster.nodes_manager.connection_kwargs
    assert options["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert options["socket_connect_timeout"] == DEFAULT_CONNECT_TIMEOUT
    with pytest.raises(ValidationError, match="pool_timeout"):
        client_from_url("redis://h", pool_timeout=-1)
    single, _ = client_from_url("redis://h", single_connection_client=True)
    assert isinstance(single, Redis) and single.single_connection_client
    with pytest.raises(ValidationError, match="ssl_ca_certs"):
        client_from_url("redis://h", ssl_ca_certs="ca.pem")  # TLS options need rediss://
    tls, _ = client_from_url("rediss://h", ssl_ca_certs="ca.pem")
    assert isinstance(tls, Redis)
    assert _pool(tls).connection_kwargs["ssl_ca_certs"] == "ca.pem"


# -- sentinel ----------------------------------------------------------------------------


async def test_sentinel_client_is_bounded_and_cancel_safe(
    redis_sentinel: SentinelProcesses,
) -> None:
    """The master's pool waits for connections and its connections keep cancellations."""
    backend = make_backend(redis_sentinel.url, max_connections=4)
    client = backend.client
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, BoundedSentinelPool)
    assert issubclass(pool.connection_class, CancelSafeSend)
    assert backend.cancel_safe
    sentinels = pool.sentinel_manager.sentinels
    assert sentinels and all(
        issubclass(s.connection_pool.connection_class, CancelSafeSend) for s in sentinels
    )
    executor = StatefulExecutor(backend)
    try:
        pods = await asyncio.wait_for(
            asyncio.gather(*(executor.set_linked_pod(NS, f"u{i}", SVC, i, -1) for i in range(500))),
            60,
        )
        assert pods == [None] * 500
        assert len(pool._in_use_connections) + len(pool._available_connections) <= 4
        assert await executor.get_linked_pod(NS, "u499", SVC) == 499
    finally:
        await delete_prefix(backend.client, backend.keys.prefix)
        await executor.aclose()


async def test_cluster_client_on_a_stalled_server(stalled: StalledServer) -> None:
    """A cluster whose only startup node never answers: bounded calls, prompt close."""
    backend = make_backend(f"redis+cluster://127.0.0.1:{stalled.port}", socket_timeout=30)
    executor = StatefulExecutor(backend, timeout=0.3, close_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await executor.get_linked_pod(NS, "u", SVC)
    assert time.monotonic() - started < 0.3 + 0.2
    stuck = asyncio.ensure_future(StatefulExecutor(backend).get_linked_pod(NS, "v", SVC))
    await _until(lambda: stalled.opened >= 2)
    started = time.monotonic()
    await executor.aclose()
    assert time.monotonic() - started < 0.2 + 0.3
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(stuck, 2)
    await _until(lambda: stalled.closed == stalled.opened)
