"""The Redis backend against real servers: time, batches, errors, clients, cancellation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis

from stateful import (
    BackendError,
    BackendUnavailable,
    ManualClock,
    StatefulExecutor,
    ValidationError,
)
from stateful.backends.redis import RedisBackend, from_url
from tests.redis_backend.scratch import ScratchBackend, scratch_backend, unique_prefix
from tests.redis_backend.servers import SentinelProcesses
from tests.support import free_port

NS, SVC = "ns:{é}", "svc }{ %"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client to look at the keys the backend wrote."""
    async with Redis.from_url(redis_url) as client:
        yield client


# -- time ----------------------------------------------------------------------------


async def _server_ms(raw: Redis) -> int:
    seconds, micros = await raw.time()
    return seconds * 1000 + micros // 1000


async def test_server_clock_lets_redis_expire_temporary_links(redis_url: str, raw: Redis) -> None:
    backend = scratch_backend(redis_url)
    key = backend.keys.link_hash(NS, "u")
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", SVC, 4, 100)
        value = await raw.hget(key, SVC)
        assert isinstance(value, bytes)
        pod, updated, expires = value.decode().split(":")
        assert pod == "4"
        # Both times come from the server's clock, and Redis holds the same instant.
        assert abs(int(expires) - (await _server_ms(raw) + 100_000)) < 2_000
        assert int(expires) - int(updated) == 100_000
        assert await raw.pexpiretime(key.decode()) == int(expires)
        # A second, longer temporary link: the hash lives as long as its latest link.
        await ex.set_linked_pod(NS, "u", "other", 1, 200)
        other_value = await raw.hget(key, "other")
        assert isinstance(other_value, bytes)
        other = other_value.decode().split(":")[2]
        assert await raw.pexpiretime(key.decode()) == int(other)
        await ex.set_linked_pod_if_absent(NS, "u", SVC, 9, -1)  # refresh to permanent
        refreshed = await raw.hget(key, SVC)
        assert isinstance(refreshed, bytes) and refreshed.startswith(b"4:")
        assert await raw.pttl(key) == -1  # a permanent link: no native expiry
        await ex.remove_linked_pod(NS, "u", SVC, 30)  # persist window
        assert 190_000 < await raw.pttl(key) <= 200_000  # "other" lives longer


async def test_server_clock_expiry_in_real_time(redis_url: str, raw: Redis) -> None:
    backend = scratch_backend(redis_url)
    key = backend.keys.link_hash(NS, "u")
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", SVC, 4, 1)
        assert await ex.get_linked_pod(NS, "u", SVC) == 4
        await asyncio.sleep(1.05)
        assert await ex.get_linked_pod(NS, "u", SVC) is None
        assert await ex.batch_get_linked_pod(NS, ["u"], SVC) == {}
        assert await ex.count_pod_links(NS, SVC) == {}
        assert [uid async for uid in ex.pod_links(NS, SVC, 4)] == []
        assert await ex.set_linked_pod(NS, "v", SVC, 1, -1) is None
        assert await raw.exists(key) == 0  # reclaimed by Redis itself
        # ... and the stale index entry the reads met is gone too.
        assert await raw.zcard(backend.keys.index_keys(NS, SVC, 4)[0]) == 0


async def test_server_clock_heartbeat_expires_with_the_hash(redis_url: str, raw: Redis) -> None:
    backend = scratch_backend(redis_url)
    key = backend.keys.pod_states(NS, SVC)
    async with StatefulExecutor(backend) as ex:
        await ex.set_service_state(NS, SVC, 1, "ready", ttl_seconds=1)
        await ex.set_service_state(NS, SVC, 2, "ready", ttl_seconds=100)
        assert 99_000 < await raw.pttl(key) <= 100_000
        await ex.set_service_state(NS, SVC, 3, "draining")
        assert await raw.pttl(key) == -1
        await asyncio.sleep(1.05)
        assert await ex.get_service_state(NS, SVC) == {2: "ready", 3: "draining"}
        assert await ex.remove_service_state(NS, SVC, 1) is False
        assert await ex.remove_service_state(NS, SVC, 3) is True
        assert 97_000 < await raw.pttl(key) <= 100_000  # only a heartbeat left
        await ex.set_service_state(NS, SVC, 2, "ready", ttl_seconds=50)
        assert 49_000 < await raw.pttl(key) <= 50_000


async def test_explicit_clock_is_followed_without_native_expiry(
    redis_url: str, raw: Redis
) -> None:
    clock = ManualClock(start_ms=0)  # 1970: far behind the server's clock
    backend = scratch_backend(redis_url, clock)
    key = backend.keys.link_hash(NS, "u")
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", SVC, 4, 5)
        assert await raw.hget(key, SVC) == b"4:0:5000" and await raw.pttl(key) == -1
        clock.advance_ms(4_999)
        assert await ex.get_linked_pod(NS, "u", SVC) == 4
        clock.advance_ms(1)  # exactly at the expiry instant: gone
        assert await ex.get_linked_pod(NS, "u", SVC) is None
        assert await raw.exists(key) == 1  # still stored, but dead
        assert await ex.remove_linked_pod(NS, "u", SVC, 0) is False
        assert await raw.exists(key) == 0  # a write reclaims a dead link


async def test_writes_drop_the_dead_links_of_other_services(redis_url: str, raw: Redis) -> None:
    clock = ManualClock(start_ms=1_000)
    backend = scratch_backend(redis_url, clock)
    key = backend.keys.link_hash(NS, "u")
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", "a", 1, 5)
        await ex.set_linked_pod(NS, "u", "b", 2, 10)
        clock.advance(5)
        await ex.set_linked_pod(NS, "u", "c", 3, -1)
        assert sorted(await raw.hkeys(key)) == [b"b", b"c"]


async def test_far_future_clock_formats_milliseconds_exactly(redis_url: str, raw: Redis) -> None:
    clock = ManualClock(start_ms=4_102_444_800_123)  # year 2100, 13 digits
    backend = scratch_backend(redis_url, clock)
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", SVC, 2**31 - 1, 315_360_000)
        value = await raw.hget(backend.keys.link_hash(NS, "u"), SVC)
        now = 4_102_444_800_123
        assert value == f"{2**31 - 1}:{now}:{now + 315_360_000_000}".encode()
        assert await ex.get_linked_pod(NS, "u", SVC) == 2**31 - 1
        info = await ex.get_link_info(NS, "u", SVC)
        assert info is not None and info.updated_at_ms == now
        assert info.expires_at_ms == now + 315_360_000_000


# -- identifiers and batches ---------------------------------------------------------


async def test_lookalike_identifiers_do_not_share_links(any_redis_url: str) -> None:
    tuples = [("a", "b:c", "s"), ("a:b", "c", "s"), ("{a}", "c", "s"), ("a", "c", "{s}")]
    async with StatefulExecutor(scratch_backend(any_redis_url)) as ex:
        for pod, (ns, uid, svc) in enumerate(tuples):
            await ex.set_linked_pod(ns, uid, svc, pod, -1)
        for pod, (ns, uid, svc) in enumerate(tuples):
            assert await ex.get_linked_pod(ns, uid, svc) == pod
            assert await ex.get_link_service(ns, uid) == {svc: pod}


async def test_large_batches_are_chunked_and_keep_input_order(any_redis_url: str) -> None:
    uids = [f"user:{{{i}}}" for i in range(2600)]
    rng = random.Random(7)
    async with StatefulExecutor(scratch_backend(any_redis_url)) as ex:
        expected: dict[int, list[str]] = {}
        linked = set(rng.sample(uids, 600))
        for uid in uids:
            if uid in linked:
                pod = rng.randrange(3)
                await ex.set_linked_pod(NS, uid, SVC, pod, -1 if pod else 600)
        query = uids[:]
        rng.shuffle(query)
        query += query[:100]  # duplicates count once
        for uid in dict.fromkeys(query):
            if uid in linked:
                pod_of = await ex.get_linked_pod(NS, uid, SVC)
                assert pod_of is not None
                expected.setdefault(pod_of, []).append(uid)
        assert await ex.batch_get_linked_pod(NS, query, SVC) == expected
        names = [f"svc{i}" for i in range(2100)]
        for name in names[::7]:
            await ex.set_workload_state(NS, name, f"state of {name}")
        assert await ex.get_workload_state(NS, reversed(names)) == {
            name: f"state of {name}" for name in reversed(names) if name in names[::7]
        }


# -- errors ------------------------------------------------------------------------


async def test_refused_connection_is_unavailable_and_construction_is_lazy() -> None:
    port = free_port()  # nothing listens there
    for url in (
        f"redis://127.0.0.1:{port}/0",
        f"redis+cluster://127.0.0.1:{port}",
        f"redis+sentinel://127.0.0.1:{port}/svc",
    ):
        executor = StatefulExecutor(from_url(url))  # no I/O yet, so no error yet
        with pytest.raises(BackendUnavailable) as caught:
            await executor.get_linked_pod(NS, "u", SVC)
        assert isinstance(caught.value.__cause__, rx.RedisError | rx.RedisClusterException)
        await executor.aclose()


async def test_timeout_is_unavailable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept and never answer
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with StatefulExecutor(
            from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
        ) as ex:
            with pytest.raises(BackendUnavailable) as caught:
                await ex.set_linked_pod(NS, "u", SVC, 1, -1)
            assert isinstance(caught.value.__cause__, rx.TimeoutError)
    finally:
        server.close()
        await server.wait_closed()


async def test_server_error_is_backend_error(redis_url: str, raw: Redis) -> None:
    backend = scratch_backend(redis_url)
    async with StatefulExecutor(backend) as ex:
        await raw.rpush(backend.keys.link_hash(NS, "u"), "not a link")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: ex.get_linked_pod_if_persist(NS, "u", SVC),  # HGET: WRONGTYPE
            lambda: ex.set_linked_pod(NS, "u", SVC, 1, -1),  # HGET inside the script
        ]
        for call in calls:
            with pytest.raises(BackendError) as caught:
                await call()
            assert not isinstance(caught.value, BackendUnavailable)
            assert isinstance(caught.value.__cause__, rx.ResponseError)


def test_error_classification() -> None:
    backend = RedisBackend(Redis())
    unavailable = [
        rx.ConnectionError("lost"),
        rx.TimeoutError("slow"),
        rx.BusyLoadingError("loading"),
        rx.ClusterDownError("CLUSTERDOWN"),
        rx.ReadOnlyError("READONLY"),
        rx.MaxConnectionsError("pool"),
        ConnectionRefusedError(),
    ]
    wrapped = rx.RedisClusterException("Redis Cluster cannot be connected.")
    wrapped.__cause__ = rx.ConnectionError("refused")
    for error in [*unavailable, wrapped]:
        assert backend.is_unavailable(error), error
    for error in (
        rx.ResponseError("WRONGTYPE"),
        rx.NoScriptError("NOSCRIPT"),
        rx.AuthenticationError("bad password"),
        rx.DataError("bad"),
    ):
        assert not backend.is_unavailable(error), error


# -- clients -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"decode_responses": True}, {"protocol": 2}, {"protocol": 3}]
)
async def test_callers_client_of_any_reply_style(redis_url: str, options: dict[str, Any]) -> None:
    async with Redis.from_url(redis_url, **options) as client:
        backend = ScratchBackend(client, prefix=unique_prefix())
        ex = StatefulExecutor(backend)
        await ex.set_linked_pod(NS, "ü", SVC, 3, -1)
        await ex.set_linked_pod(NS, "v", SVC, 4, 60)
        await ex.set_service_state(NS, SVC, 1, "ready ✓")
        await ex.set_workload_state(NS, SVC, "stable ✓")
        assert await ex.get_link_service(NS, "ü") == {SVC: 3}
        assert await ex.get_linked_pod_if_persist(NS, "ü", SVC) == 3
        assert await ex.get_linked_pod_if_persist(NS, "v", SVC) is None
        assert await ex.batch_get_linked_pod(NS, ["v", "ü", "w"], SVC) == {4: ["v"], 3: ["ü"]}
        assert await ex.get_service_state(NS, SVC) == {1: "ready ✓"}
        assert await ex.get_workload_state(NS, [SVC]) == {SVC: "stable ✓"}
        await ex.aclose()
        assert await client.ping()  # the caller's client is still the caller's


async def test_backend_closes_only_what_it_created(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Redis] = []
    original = Redis.aclose

    async def spy(self: Redis, *args: Any, **kwargs: Any) -> None:
        closed.append(self)
        await original(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "aclose", spy)
    callers = Redis.from_url(redis_url)
    await RedisBackend(callers).aclose()
    assert closed == []
    owned = from_url(redis_url)
    await owned.aclose()
    await owned.aclose()  # twice is fine
    assert closed == [owned.client]
    await callers.aclose()


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="prefix"):
        from_url("redis://localhost", prefix="{x}")
    with pytest.raises(TypeError, match="client"):
        RedisBackend("redis://localhost")  # type: ignore[arg-type]


# -- cancellation ----------------------------------------------------------------------


async def test_cancelled_calls_leave_the_pool_clean(any_redis_url: str) -> None:
    """A call cancelled at any point must not leave a reply for the next caller to read.

    The executor shields Redis calls anyway (redis-py sometimes lets a
    cancelled call run on); here the backend is cancelled directly.
    """
    backend = scratch_backend(any_redis_url)
    assert backend.cancel_safe
    uids = [f"u{i}" for i in range(1500)]
    try:
        await backend.set_linked_pod(NS, "anchor", SVC, 5, -1)
        await backend.set_service_state(NS, SVC, 0, "ready")
        for steps in range(12):
            task = asyncio.ensure_future(backend.batch_get_linked_pod(NS, uids, SVC))
            write = asyncio.ensure_future(backend.set_linked_pod(NS, f"w{steps}", SVC, 1, -1))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            write.cancel()
            await asyncio.gather(task, write, return_exceptions=True)
            assert await backend.get_linked_pod(NS, "anchor", SVC) == 5
            assert await backend.get_service_state(NS, SVC) == {0: "ready"}
            assert await backend.get_linked_pod(NS, f"w{steps}", SVC) in (None, 1)
        # Through the executor, whose timeout cancels the (unshielded) call.
        outcomes: list[object] = []
        for i in range(40):
            hasty = StatefulExecutor(backend, timeout=0.00005 * (1 + i % 8))
            try:
                outcomes.append(await hasty.set_linked_pod(NS, "t", SVC, i, -1))
            except BackendUnavailable:
                outcomes.append("timed out")
        assert "timed out" in outcomes
        pod = await backend.get_linked_pod(NS, "t", SVC)
        assert await backend.get_link_service(NS, "t") == ({} if pod is None else {SVC: pod})
        assert await backend.get_linked_pod(NS, "anchor", SVC) == 5
    finally:
        await backend.aclose()


# -- sentinel ------------------------------------------------------------------------


async def test_sentinel_url(redis_sentinel: SentinelProcesses) -> None:
    url = redis_sentinel.url
    async with StatefulExecutor(from_url(url, prefix=unique_prefix())) as ex:
        assert await ex.set_linked_pod(NS, "u", SVC, 1, -1) is None
        assert await ex.try_set_linked_pod(NS, "u", SVC, 2, 60) == (False, 1)
        assert await ex.get_link_service(NS, "u") == {SVC: 1}
        # The pod operations take the standalone path (index kept inside the scripts).
        await ex.set_service_state(NS, SVC, 2, "ready", ttl_seconds=60)
        assert await ex.place_linked_pod(NS, "v", SVC, -1) == 2
        assert await ex.count_pod_links(NS, SVC) == {1: 1, 2: 1}
        assert [uid async for uid in ex.pod_links(NS, SVC, 2)] == ["v"]
        assert await ex.remove_pod_links(NS, SVC, 2, 0) == 1
        assert await ex.remove_service_state(NS, SVC, 2) is True
    async with Redis(port=redis_sentinel.master.port) as master:
        assert await master.dbsize() == 3  # the uid's links, the pod index, its pods


async def test_pod_states_written_before_heartbeats_still_read(redis_url: str, raw: Redis) -> None:
    backend = scratch_backend(redis_url)
    async with StatefulExecutor(backend) as ex:
        await raw.hset(backend.keys.pod_states(NS, SVC), "1", "ready")  # the former format
        assert await ex.get_service_state(NS, SVC) == {1: "ready"}
        await ex.set_service_state(NS, SVC, 2, "draining", ttl_seconds=60)
        assert await ex.get_service_state(NS, SVC) == {1: "ready", 2: "draining"}
        assert await raw.pttl(backend.keys.pod_states(NS, SVC)) == -1  # 1 is permanent
        assert await ex.remove_service_state(NS, SVC, 1) is True
