"""The pod index (``docs/redis.md``, "Pod index"): exact on a standalone server,
over-reporting but never under-reporting on a cluster, where a write keeps it
in separate steps (index_add, link, index_drop).

The crash tests run only some steps of a write, as a process dying between
them would, then check that readers still answer right and that a later
reader or write repairs the index. "Time passing" for the pending marks is
simulated by ageing the mark in Redis, so no test sleeps for it.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from stateful import ManualClock, StatefulExecutor
from stateful.backends.redis.backend import _INDEX_DROP, _SET_LINKED_POD, RedisBackend, _numbers
from tests.redis_backend.scratch import ScratchBackend, scratch_backend

NS, SVC = "ns:{x}", "game:}"


async def _indexed(backend: RedisBackend, pod: int) -> list[str]:
    """What the pod's index holds (raw, before any check)."""
    key = backend.keys.index_keys(NS, SVC, pod)[0]
    members: list[Any] = await backend.client.execute_command("ZRANGE", key, 0, -1)
    return [m.decode() for m in members]


async def _age_mark(backend: RedisBackend, pod: int, uid: str, ms: int) -> None:
    """Make the pending mark of (pod, uid) look ``ms`` older, as if time had passed."""
    pending = backend.keys.index_keys(NS, SVC, pod)[2]
    member = f"{pod}:{uid}".encode()
    score = await backend.client.execute_command("ZSCORE", pending, member)
    assert score is not None, "no pending mark to age"
    await backend.client.execute_command("ZADD", pending, "XX", int(float(score)) - ms, member)


async def _link_step(
    backend: RedisBackend, uid: str, pod: int, stamp: bytes, persist: int = -1
) -> Any:
    """Step 2 of a cluster set_linked_pod alone: the link script with a given index stamp."""
    key = backend.keys.link_hash(NS, uid)
    args = ("", SVC.encode(), uid.encode(), b"", stamp, str(pod), str(persist))
    reply: Any = await _SET_LINKED_POD.run(backend.client, (key,), args)
    if reply in (b"index", "index"):
        return reply
    return _numbers(reply)  # the link writers reply 'a,b,moved,t'


async def _server_ms(backend: RedisBackend) -> int:
    seconds, micros = await backend.client.execute_command("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.fixture
async def cluster(redis_cluster_url: str) -> Any:
    """A scratch backend on the cluster (server clock) and its executor."""
    backend = scratch_backend(redis_cluster_url)
    async with StatefulExecutor(backend) as ex:
        yield backend, ex


async def _links(ex: StatefulExecutor, pod: int, page_size: int = 1000) -> list[str]:
    return [uid async for uid in ex.pod_links(NS, SVC, pod, page_size=page_size)]


# -- crash between the steps of a cluster write --------------------------------------


async def test_crash_after_index_add_over_reports_until_a_reader_drops_it(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    backend, ex = cluster
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    # A move of u to pod 5 dies after step 1: u is in 5's index, still linked to 1.
    await backend._index_add(NS, SVC, 5, b"u")
    assert await _indexed(backend, 5) == ["u"]
    # Readers check the links: nothing is reported for 5, and 1 is right.
    assert await _links(ex, 5) == [] and await _links(ex, 1) == ["u"]
    assert await ex.count_pod_links(NS, SVC) == {1: 1}
    # While the mark is pending (the write might still land) the entry stays...
    assert await _indexed(backend, 5) == ["u"]
    # ...once it is older than any write may be, the next reader drops it.
    await _age_mark(backend, 5, "u", 30_000)
    assert await ex.count_pod_links(NS, SVC) == {1: 1}
    assert await _indexed(backend, 5) == []
    assert await backend.client.execute_command(
        "SISMEMBER", backend.keys.index_keys(NS, SVC, 5)[1], "5"
    ) == 0


async def test_crash_after_the_link_moved_leaves_a_stale_entry_readers_repair(
    cluster: tuple[ScratchBackend, StatefulExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, ex = cluster
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)

    async def crash(*args: object) -> None:  # step 3 never runs
        return None

    monkeypatch.setattr(backend, "_index_drop_quietly", crash)
    assert await ex.set_linked_pod(NS, "u", SVC, 2, -1) == 1
    assert await _indexed(backend, 1) == ["u"] and await _indexed(backend, 2) == ["u"]
    monkeypatch.undo()
    # The stale entry at 1 is never reported...
    assert await _links(ex, 1) == [] and await _links(ex, 2) == ["u"]
    assert await _indexed(backend, 1) == ["u"]  # (the first write's mark is recent)
    # ...and once no write to pod 1 can be pending for u, the next reader drops it.
    await _age_mark(backend, 1, "u", 30_000)
    assert await _links(ex, 1) == []
    assert await _indexed(backend, 1) == []
    assert await ex.count_pod_links(NS, SVC) == {2: 1}


async def test_crash_after_the_link_moved_is_repaired_by_a_later_write(
    cluster: tuple[ScratchBackend, StatefulExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, ex = cluster
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)

    async def crash(*args: object) -> None:
        return None

    monkeypatch.setattr(backend, "_index_drop_quietly", crash)
    await ex.set_linked_pod(NS, "u", SVC, 2, -1)
    monkeypatch.undo()
    await _age_mark(backend, 1, "u", 30_000)  # the first write was long ago
    # A drain of pod 1 meets the stale entry: removes nothing, drops the entry.
    assert await ex.remove_pod_links(NS, SVC, 1, 0) == 0
    assert await _indexed(backend, 1) == []
    assert await ex.get_linked_pod(NS, "u", SVC) == 2


async def test_slow_writer_between_its_steps_is_not_undone_by_a_reader(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    backend, ex = cluster
    stamp = await backend._index_add(NS, SVC, 5, b"u")  # step 1 of set_linked_pod(u -> 5)
    assert await _links(ex, 5) == []  # not linked yet: not reported...
    assert await _indexed(backend, 5) == ["u"]  # ...and the pending entry is kept
    await _link_step(backend, "u", 5, stamp)  # step 2 lands later
    assert await _links(ex, 5) == ["u"]
    assert await ex.count_pod_links(NS, SVC) == {5: 1}


async def test_link_step_refuses_an_index_step_older_than_its_bound(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    backend, ex = cluster
    stamp = str(await _server_ms(backend) - 11_000).encode()
    with pytest.raises(Exception, match="index step is older"):
        await _link_step(backend, "u", 5, stamp)
    assert await ex.get_linked_pod(NS, "u", SVC) is None


async def test_a_write_whose_index_step_went_stale_in_a_queue_adds_again_and_lands(
    cluster: tuple[ScratchBackend, StatefulExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a long queue (10,000 calls at once) step 1 can be older than the
    # bound when step 2 runs: the write repeats step 1 instead of failing.
    _, ex = cluster
    real_add = RedisBackend._index_add
    stale = [True]

    async def add_then_wait(self: RedisBackend, *args: Any) -> bytes:
        stamp = await real_add(self, *args)
        if stale and stale.pop():
            return str(int(stamp) - 11_000).encode()
        return stamp

    monkeypatch.setattr(RedisBackend, "_index_add", add_then_wait)
    assert await ex.set_linked_pod(NS, "u", SVC, 5, -1) is None
    assert stale == []
    assert await ex.get_linked_pod(NS, "u", SVC) == 5
    assert await _links(ex, 5) == ["u"]


async def test_link_step_without_index_step_asks_for_it(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    backend, ex = cluster
    reply: Any = await _link_step(backend, "u", 5, b"")
    assert reply in (b"index", "index")
    assert await ex.get_linked_pod(NS, "u", SVC) is None


async def test_drop_after_an_opposite_move_keeps_the_entry(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    """A moves u 1 -> 2, B moves it back 2 -> 1; A's drop from 1 comes last."""
    backend, ex = cluster
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    stamp_a = await backend._index_add(NS, SVC, 2, b"u")  # A1
    reply_a = await _link_step(backend, "u", 2, stamp_a)  # A2: link at 2, it left 1
    assert int(reply_a[2]) == 1
    stamp_b = await backend._index_add(NS, SVC, 1, b"u")  # B1
    await _link_step(backend, "u", 1, stamp_b)  # B2: back at 1
    # A3: drop u from 1's index, observed at A2's time. B's mark keeps it.
    await _INDEX_DROP.run(
        backend.client, backend.keys.index_keys(NS, SVC, 1)[:3], (reply_a[3], "1", b"u")
    )
    assert await _indexed(backend, 1) == ["u"]
    assert await _links(ex, 1) == ["u"] and await _links(ex, 2) == []


async def test_drop_with_an_outdated_observation_drops_nothing(
    cluster: tuple[ScratchBackend, StatefulExecutor],
) -> None:
    backend, ex = cluster
    await backend._index_add(NS, SVC, 3, b"u")
    await _age_mark(backend, 3, "u", 30_000)
    seen = await _server_ms(backend) - 11_000
    keys = backend.keys.index_keys(NS, SVC, 3)[:3]
    await _INDEX_DROP.run(backend.client, keys, (seen, "3", b"u"))
    assert await _indexed(backend, 3) == ["u"]
    assert await _links(ex, 3) == []


async def test_expired_temporary_links_on_a_cluster(redis_cluster_url: str) -> None:
    clock = ManualClock(start_ms=1_000_000)
    backend = scratch_backend(redis_cluster_url, clock)
    async with StatefulExecutor(backend) as ex:
        for uid in ("a", "b", "c"):
            await ex.set_linked_pod(NS, uid, SVC, 4, 10 if uid != "c" else -1)
        clock.advance(10)  # a and b die without any write
        assert await _links(ex, 4) == ["c"]
        assert await ex.count_pod_links(NS, SVC) == {4: 1}
        for uid in ("a", "b"):
            await _age_mark(backend, 4, uid, 30_000)
        assert await _links(ex, 4) == ["c"]
        assert await _indexed(backend, 4) == ["c"]  # the dead ones were dropped


# -- exactly once, under moves, on both layouts --------------------------------------


async def test_walk_under_concurrent_moves_yields_stayers_exactly_once(any_redis_url: str) -> None:
    """Stayers come exactly once; a movers' uid comes at most once, and only if it was there."""
    stayers = [f"s{i:03}" for i in range(120)]
    movers = [f"m{i:03}" for i in range(60)]
    backend = scratch_backend(any_redis_url)
    rng = random.Random(7)
    async with StatefulExecutor(backend) as ex:
        await asyncio.gather(*(ex.set_linked_pod(NS, uid, SVC, 1, -1) for uid in stayers + movers))
        stop = asyncio.Event()

        async def churn() -> int:
            moves = 0
            while not stop.is_set() and moves < 2_000:
                uid = rng.choice(movers)
                await ex.set_linked_pod(NS, uid, SVC, rng.choice([1, 2]), -1)
                moves += 1
            return moves

        churner = asyncio.create_task(churn())
        seen: list[str] = []
        for _ in range(3):
            walk = await _links(ex, 1, page_size=7)
            seen = walk
            assert len(walk) == len(set(walk)), "a uid came twice"
            assert set(stayers) <= set(walk)
            assert set(walk) <= set(stayers) | set(movers)
            assert walk == sorted(walk)  # one order for the whole walk
        stop.set()
        assert await churner > 0
        assert seen
        # Once writes stop, everything is exact again.
        counts = await ex.count_pod_links(NS, SVC)
        on_one = await _links(ex, 1)
        on_two = await _links(ex, 2)
        assert counts.get(1, 0) == len(on_one) and counts.get(2, 0) == len(on_two)
        assert len(on_one) + len(on_two) == len(stayers) + len(movers)
        for uid in on_two:
            assert await ex.get_linked_pod(NS, uid, SVC) == 2


async def test_drain_removes_each_link_once_and_leaves_moved_ones(any_redis_url: str) -> None:
    backend = scratch_backend(any_redis_url)
    async with StatefulExecutor(backend) as ex:
        uids = [f"u{i:04}" for i in range(1_200)]  # more than one page
        for start in range(0, len(uids), 50):
            await asyncio.gather(
                *(ex.set_linked_pod(NS, uid, SVC, 7, -1) for uid in uids[start : start + 50])
            )
        await ex.set_linked_pod(NS, uids[0], SVC, 8, -1)  # moved before the drain
        assert await ex.count_pod_links(NS, SVC) == {7: 1_199, 8: 1}
        assert await ex.remove_pod_links(NS, SVC, 7, 30) == 1_199  # kept 30 s, temporary
        assert await ex.count_pod_links(NS, SVC) == {7: 1_199, 8: 1}
        info = await ex.get_link_info(NS, uids[1], SVC)
        assert info is not None and info.expires_at_ms is not None and info.pod_id == 7
        assert await ex.remove_pod_links(NS, SVC, 7, 0) == 1_199
        assert await ex.count_pod_links(NS, SVC) == {8: 1}
        assert await _links(ex, 7) == []
        if "cluster" in any_redis_url:
            # The writes' marks are recent: the entries stay until they age out.
            assert len(await _indexed(backend, 7)) == 1_200
            pending = backend.keys.index_keys(NS, SVC, 7)[2]
            await backend.client.execute_command("DEL", pending)  # as if all were old
            assert await _links(ex, 7) == []
        assert await _indexed(backend, 7) == []


async def test_standalone_counts_skip_dead_temporary_links_without_reading_them(
    redis_url: str,
) -> None:
    clock = ManualClock(start_ms=5_000)
    backend = scratch_backend(redis_url, clock)
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "a", SVC, 1, 10)
        await ex.set_linked_pod(NS, "b", SVC, 1, 20)
        await ex.set_linked_pod(NS, "c", SVC, 1, -1)
        await ex.set_linked_pod(NS, "d", SVC, 2, 10)
        assert await ex.count_pod_links(NS, SVC) == {1: 3, 2: 1}
        clock.advance_ms(9_999)
        assert await ex.count_pod_links(NS, SVC) == {1: 3, 2: 1}
        clock.advance_ms(1)  # a and d die at this very instant
        assert await ex.count_pod_links(NS, SVC) == {1: 2}
        await ex.set_linked_pod(NS, "a", SVC, 1, -1)  # back, permanent: counted again
        await ex.remove_linked_pod(NS, "c", SVC, 5)  # temporary now, 5 s
        assert await ex.count_pod_links(NS, SVC) == {1: 3}
        clock.advance(5)
        assert await ex.count_pod_links(NS, SVC) == {1: 2}
        clock.advance(5)  # b dies too
        assert await ex.count_pod_links(NS, SVC) == {1: 1}
        assert await _links(ex, 1) == ["a"]
        assert await _indexed(backend, 1) == ["a"]  # the walk dropped the dead ones
        temporary = backend.keys.index_keys(NS, SVC, 1)[3]
        assert await backend.client.execute_command("ZCARD", temporary) == 0


async def test_standalone_count_after_redis_expired_a_temporary_link(
    redis_url: str,
) -> None:
    backend = scratch_backend(redis_url)  # server clock: Redis expires the hash itself
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(NS, "u", SVC, 1, 1)
        await asyncio.sleep(1.05)
        assert await ex.count_pod_links(NS, SVC) == {}
        await ex.set_linked_pod(NS, "u", SVC, 1, -1)  # a fresh permanent link, same pod
        assert await ex.count_pod_links(NS, SVC) == {1: 1}
        await ex.set_linked_pod(NS, "v", SVC, 1, 1)
        await asyncio.sleep(1.05)
        await ex.set_linked_pod(NS, "v", SVC, 2, 60)  # fresh, another pod
        assert await ex.count_pod_links(NS, SVC) == {1: 1, 2: 1}
        assert await _links(ex, 1) == ["u"] and await _links(ex, 2) == ["v"]
