"""Example tests pinning every edge case of the contract's semantics.

They run against every backend of the matrix in ``tests/matrix.py``.
"""

from __future__ import annotations

import asyncio

import pytest

import stateful
from stateful import ManualClock, StatefulExecutor

NS, SVC = "ns", "game"
pytestmark = pytest.mark.usefixtures("store")


@pytest.fixture
def ex(store: tuple[StatefulExecutor, ManualClock]) -> StatefulExecutor:
    return store[0]


@pytest.fixture
def clock(store: tuple[StatefulExecutor, ManualClock]) -> ManualClock:
    return store[1]


# -- expiry is exact to the millisecond ---------------------------------------------


async def test_temporary_link_is_live_until_the_last_millisecond(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 4, 2)
    clock.advance_ms(1999)
    assert await ex.get_linked_pod(NS, "u", SVC) == 4
    clock.advance_ms(1)
    assert await ex.get_linked_pod(NS, "u", SVC) is None
    assert await ex.batch_get_linked_pod(NS, ["u"], SVC) == {}
    assert await ex.remove_linked_pod(NS, "u", SVC, -1) is False


async def test_expired_link_counts_as_absent_for_writes(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 4, 1)
    clock.advance(1)
    assert await ex.set_linked_pod(NS, "u", SVC, 5, -1) is None
    await ex.set_linked_pod(NS, "v", SVC, 4, 1)
    clock.advance(1)
    assert await ex.set_linked_pod_if_absent(NS, "v", SVC, 6, -1) == 6
    await ex.set_linked_pod(NS, "w", SVC, 4, 1)
    clock.advance(1)
    assert await ex.remove_linked_pod_with_id(NS, "w", SVC, 0, 4) is False


# -- set_linked_pod --------------------------------------------------------------


async def test_set_returns_the_previous_live_pod(ex: StatefulExecutor) -> None:
    assert await ex.set_linked_pod(NS, "u", SVC, 1, -1) is None
    assert await ex.set_linked_pod(NS, "u", SVC, 2, 30) == 1
    assert await ex.set_linked_pod(NS, "u", SVC, 3, -1) == 2
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 3


async def test_set_temporary_over_permanent_makes_it_temporary(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    await ex.set_linked_pod(NS, "u", SVC, 1, 5)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) is None
    assert await ex.get_link_service(NS, "u") == {}
    clock.advance(5)
    assert await ex.get_linked_pod(NS, "u", SVC) is None


async def test_longest_persist_is_accepted(ex: StatefulExecutor, clock: ManualClock) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, 315_360_000)
    clock.advance(315_360_000 - 0.001)
    assert await ex.get_linked_pod(NS, "u", SVC) == 1
    clock.advance_ms(1)
    assert await ex.get_linked_pod(NS, "u", SVC) is None


# -- try_set_linked_pod --------------------------------------------------------------


async def test_try_set_refuses_over_a_permanent_link_to_another_pod(
    ex: StatefulExecutor,
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 2, -1) == (False, 1)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 2, 10) == (False, 1)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 1


async def test_try_set_overwrites_a_temporary_link(ex: StatefulExecutor) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, 10)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 2, -1) == (True, 2)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 2


async def test_try_set_same_pod_sets_again_and_may_make_it_temporary(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 1, 3) == (True, 1)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) is None
    clock.advance(3)
    assert await ex.get_linked_pod(NS, "u", SVC) is None
    assert await ex.try_set_linked_pod(NS, "u", SVC, 7, 3) == (True, 7)


# -- set_linked_pod_if_absent ------------------------------------------------------------


async def test_if_absent_creates_then_keeps(ex: StatefulExecutor) -> None:
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 1, -1) == 1
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 2, -1) == 1
    assert await ex.get_linked_pod(NS, "u", SVC) == 1


async def test_if_absent_restarts_a_temporary_links_ttl(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, 2)
    clock.advance(1.5)
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 9, 2) == 1
    clock.advance(1.999)
    assert await ex.get_linked_pod(NS, "u", SVC) == 1
    clock.advance_ms(1)
    assert await ex.get_linked_pod(NS, "u", SVC) is None


async def test_if_absent_with_minus_one_makes_a_temporary_link_permanent(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, 2)
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 9, -1) == 1
    clock.advance(100)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 1


async def test_if_absent_leaves_a_permanent_link_permanent(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 9, 2) == 1
    clock.advance(100)
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 1


# -- reads ------------------------------------------------------------------------------------


async def test_get_if_persist_ignores_temporary_links(ex: StatefulExecutor) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, 10)
    assert await ex.get_linked_pod(NS, "u", SVC) == 1
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) is None


async def test_batch_groups_by_pod_in_input_order_each_uid_once(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    for uid, pod in (("a", 1), ("b", 2), ("c", 1), ("d", 1)):
        await ex.set_linked_pod(NS, uid, SVC, pod, -1)
    await ex.set_linked_pod(NS, "gone", SVC, 2, 1)
    clock.advance(1)
    result = await ex.batch_get_linked_pod(NS, ["d", "x", "b", "a", "d", "gone", "c", "a"], SVC)
    assert result == {1: ["d", "a", "c"], 2: ["b"]}
    assert list(result[1]) == ["d", "a", "c"]
    assert await ex.batch_get_linked_pod(NS, [], SVC) == {}


async def test_batch_of_more_than_a_thousand_uids(ex: StatefulExecutor) -> None:
    uids = [f"user:{i}" for i in range(2500)]
    for i in range(0, 2500, 7):
        await ex.set_linked_pod(NS, uids[i], SVC, i % 3, -1)
    result = await ex.batch_get_linked_pod(NS, uids, SVC)
    expected: dict[int, list[str]] = {}
    for i in range(0, 2500, 7):
        expected.setdefault(i % 3, []).append(uids[i])
    assert result == expected


async def test_link_service_lists_only_live_permanent_links(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", "chat", 1, -1)
    await ex.set_linked_pod(NS, "u", "game", 2, -1)
    await ex.set_linked_pod(NS, "u", "lobby", 3, 10)
    await ex.set_linked_pod(NS, "other", "chat", 4, -1)
    assert await ex.get_link_service(NS, "u") == {"chat": 1, "game": 2}
    await ex.remove_linked_pod(NS, "u", "game", 5)
    assert await ex.get_link_service(NS, "u") == {"chat": 1}
    assert await ex.get_link_service(NS, "nobody") == {}


# -- removal --------------------------------------------------------------------------------


async def test_remove_without_a_link_is_false(ex: StatefulExecutor) -> None:
    assert await ex.remove_linked_pod(NS, "u", SVC, -1) is False
    assert await ex.remove_linked_pod_with_id(NS, "u", SVC, 0, 1) is False


@pytest.mark.parametrize("persist", [-1, 0])
async def test_remove_with_minus_one_or_zero_deletes(ex: StatefulExecutor, persist: int) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.remove_linked_pod(NS, "u", SVC, persist) is True
    assert await ex.get_linked_pod(NS, "u", SVC) is None
    assert await ex.remove_linked_pod(NS, "u", SVC, persist) is False


async def test_remove_with_persist_window_keeps_a_temporary_link(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.remove_linked_pod(NS, "u", SVC, 30) is True
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) is None
    clock.advance(29.999)
    assert await ex.get_linked_pod(NS, "u", SVC) == 1  # user comes back to the same pod
    clock.advance_ms(1)
    assert await ex.get_linked_pod(NS, "u", SVC) is None


async def test_remove_with_id_only_removes_the_matching_pod(ex: StatefulExecutor) -> None:
    await ex.set_linked_pod(NS, "u", SVC, 1, -1)
    assert await ex.remove_linked_pod_with_id(NS, "u", SVC, -1, 2) is False
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) == 1
    assert await ex.remove_linked_pod_with_id(NS, "u", SVC, 10, 1) is True
    assert await ex.get_linked_pod(NS, "u", SVC) == 1
    assert await ex.get_linked_pod_if_persist(NS, "u", SVC) is None
    assert await ex.remove_linked_pod_with_id(NS, "u", SVC, 0, 1) is True
    assert await ex.get_linked_pod(NS, "u", SVC) is None


# -- states -----------------------------------------------------------------------------------


async def test_pod_states_are_overwritten_per_pod(ex: StatefulExecutor) -> None:
    assert await ex.get_service_state(NS, SVC) == {}
    await ex.set_service_state(NS, SVC, 0, "ready")
    await ex.set_service_state(NS, SVC, 1, "ready")
    await ex.set_service_state(NS, SVC, 0, "draining")
    assert await ex.get_service_state(NS, SVC) == {0: "draining", 1: "ready"}


async def test_workload_state_lists_only_services_that_have_one(ex: StatefulExecutor) -> None:
    await ex.set_workload_state(NS, "game", "stable")
    await ex.set_workload_state(NS, "chat", "updating")
    await ex.set_workload_state(NS, "game", "updating")
    assert await ex.get_workload_state(NS, ["game", "none", "chat", "game"]) == {
        "game": "updating",
        "chat": "updating",
    }


# -- identifiers and namespaces ----------------------------------------------------------------


HOSTILE = ["a", "a:b", "b:c", "c", "{a}", "}{", "A", "a ", " a", "%3A", "é😀", "a\tb", "x" * 1024]


async def test_hostile_identifiers_never_share_storage(ex: StatefulExecutor) -> None:
    tuples = [(ns, uid, svc) for ns in HOSTILE[:8] for uid in HOSTILE for svc in ("s", "s:{a}")]
    tuples = [t for t in tuples if len(t[0]) <= 255]
    for pod, (ns, uid, svc) in enumerate(tuples):
        await ex.set_linked_pod(ns, uid, svc, pod, -1)
    for pod, (ns, uid, svc) in enumerate(tuples):
        assert await ex.get_linked_pod(ns, uid, svc) == pod, (ns, uid, svc)
    ns = HOSTILE[1]
    uids = [uid for uid in HOSTILE]
    batch = await ex.batch_get_linked_pod(ns, uids, "s")
    assert sorted(u for group in batch.values() for u in group) == sorted(uids)
    assert await ex.get_link_service("a", "b:c") == {
        "s": tuples.index(("a", "b:c", "s")),
        "s:{a}": tuples.index(("a", "b:c", "s:{a}")),
    }


async def test_namespaces_are_isolated(ex: StatefulExecutor) -> None:
    await ex.set_linked_pod("one", "u", SVC, 1, -1)
    await ex.set_service_state("one", SVC, 0, "ready")
    await ex.set_workload_state("one", SVC, "stable")
    assert await ex.get_linked_pod("two", "u", SVC) is None
    assert await ex.get_link_service("two", "u") == {}
    assert await ex.get_service_state("two", SVC) == {}
    assert await ex.get_workload_state("two", [SVC]) == {}
    assert await ex.remove_linked_pod("two", "u", SVC, 0) is False
    assert await ex.get_linked_pod("one", "u", SVC) == 1


async def test_states_round_trip_exactly(ex: StatefulExecutor) -> None:
    for state in ("ready", "Ready", "ready ", "ü:{x}", "😀" * 4096):
        await ex.set_workload_state(NS, SVC, state)
        assert await ex.get_workload_state(NS, [SVC]) == {SVC: state}
        await ex.set_service_state(NS, SVC, 2**31 - 1, state)
        assert await ex.get_service_state(NS, SVC) == {2**31 - 1: state}


# -- pods come and go -----------------------------------------------------------------------


async def test_state_with_ttl_is_gone_at_its_exact_instant(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_service_state(NS, SVC, 0, "ready", ttl_seconds=5)
    await ex.set_service_state(NS, SVC, 1, "ready")
    clock.advance_ms(4999)
    assert await ex.get_service_state(NS, SVC) == {0: "ready", 1: "ready"}
    clock.advance_ms(1)
    assert await ex.get_service_state(NS, SVC) == {1: "ready"}
    assert await ex.remove_service_state(NS, SVC, 0) is False  # already dead
    # A heartbeat renews it; a set without ttl makes it permanent again.
    await ex.set_service_state(NS, SVC, 0, "ready", ttl_seconds=5)
    clock.advance(4)
    await ex.set_service_state(NS, SVC, 0, "draining", ttl_seconds=5)
    clock.advance(4)
    assert await ex.get_service_state(NS, SVC) == {0: "draining", 1: "ready"}
    await ex.set_service_state(NS, SVC, 0, "ready")
    clock.advance(3600)
    assert await ex.get_service_state(NS, SVC) == {0: "ready", 1: "ready"}


async def test_remove_service_state(ex: StatefulExecutor) -> None:
    await ex.set_service_state(NS, SVC, 3, "ready")
    assert await ex.remove_service_state(NS, SVC, 3) is True
    assert await ex.remove_service_state(NS, SVC, 3) is False
    assert await ex.get_service_state(NS, SVC) == {}


async def test_link_info_tracks_expiry_and_last_update(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    t0 = clock.now_ms()
    assert await ex.get_link_info(NS, "u", SVC) is None
    await ex.set_linked_pod(NS, "u", SVC, 2, -1)
    info = await ex.get_link_info(NS, "u", SVC)
    assert info == stateful.LinkInfo(NS, "u", SVC, 2, None, t0)
    assert info is not None and info.permanent
    clock.advance(1)
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 5, 30) == 2  # permanent: kept as is
    assert await ex.get_link_info(NS, "u", SVC) == stateful.LinkInfo(NS, "u", SVC, 2, None, t0)
    assert await ex.remove_linked_pod(NS, "u", SVC, 30) is True  # turned temporary: updated
    t1 = clock.now_ms()
    assert await ex.get_link_info(NS, "u", SVC) == stateful.LinkInfo(
        NS, "u", SVC, 2, t1 + 30_000, t1
    )
    clock.advance(2)
    assert await ex.set_linked_pod_if_absent(NS, "u", SVC, 5, 10) == 2  # temporary: refreshed
    t2 = clock.now_ms()
    assert await ex.get_link_info(NS, "u", SVC) == stateful.LinkInfo(
        NS, "u", SVC, 2, t2 + 10_000, t2
    )
    clock.advance(3)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 7, -1) == (True, 7)
    t3 = clock.now_ms()
    assert await ex.get_link_info(NS, "u", SVC) == stateful.LinkInfo(NS, "u", SVC, 7, None, t3)
    clock.advance(1)
    assert await ex.try_set_linked_pod(NS, "u", SVC, 8, -1) == (False, 7)  # refused: unchanged
    assert await ex.get_link_info(NS, "u", SVC) == stateful.LinkInfo(NS, "u", SVC, 7, None, t3)
    await ex.set_linked_pod(NS, "v", SVC, 1, 1)
    clock.advance(1)
    assert await ex.get_link_info(NS, "v", SVC) is None


async def _all_pod_links(ex: StatefulExecutor, pod: int, page_size: int) -> list[str]:
    return [uid async for uid in ex.pod_links(NS, SVC, pod, page_size=page_size)]


async def test_pod_links_yields_each_live_link_of_the_pod_once(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    on_pod = {f"u{i}" for i in range(23)}
    for uid in sorted(on_pod):
        await ex.set_linked_pod(NS, uid, SVC, 4, -1)
    await ex.set_linked_pod(NS, "temporary", SVC, 4, 2)
    await ex.set_linked_pod(NS, "expired", SVC, 4, 1)
    await ex.set_linked_pod(NS, "elsewhere", SVC, 5, -1)
    await ex.set_linked_pod("other-ns", "x", SVC, 4, -1)
    await ex.set_linked_pod(NS, "x", "other-svc", 4, -1)
    clock.advance(1)
    for page_size in (1, 5, 23, 1000):
        uids = await _all_pod_links(ex, 4, page_size)
        assert len(uids) == len(set(uids)), f"duplicates with page_size={page_size}"
        assert set(uids) == on_pod | {"temporary"}
    assert await _all_pod_links(ex, 6, 10) == []


async def test_pod_links_walk_survives_writes_between_pages(ex: StatefulExecutor) -> None:
    stay = {f"s{i}" for i in range(10)}
    leave = {f"l{i}" for i in range(10)}
    for uid in sorted(stay | leave):
        await ex.set_linked_pod(NS, uid, SVC, 1, -1)
    seen: list[str] = []
    walk = ex.pod_links(NS, SVC, 1, page_size=3)
    async for uid in walk:
        seen.append(uid)
        if len(seen) == 4:  # between pages: move some users away, refresh the others
            for moved in sorted(leave):
                await ex.set_linked_pod(NS, moved, SVC, 2, -1)
            for kept in sorted(stay):
                await ex.set_linked_pod(NS, kept, SVC, 1, -1)
    assert len(seen) == len(set(seen))
    assert stay <= set(seen)  # linked for the whole walk: each exactly once
    assert set(seen) <= stay | leave


async def test_count_pod_links_counts_live_links_per_pod(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    assert await ex.count_pod_links(NS, SVC) == {}
    for i in range(7):
        await ex.set_linked_pod(NS, f"u{i}", SVC, i % 3, -1)
    await ex.set_linked_pod(NS, "short", SVC, 9, 1)
    await ex.set_linked_pod(NS, "u0", "other-svc", 1, -1)
    assert await ex.count_pod_links(NS, SVC) == {0: 3, 1: 2, 2: 2, 9: 1}
    clock.advance(1)
    await ex.remove_linked_pod(NS, "u1", SVC, 0)
    assert await ex.count_pod_links(NS, SVC) == {0: 3, 1: 1, 2: 2}


@pytest.mark.parametrize("persist", [0, 30])
async def test_remove_pod_links_drains_one_pod(
    ex: StatefulExecutor, clock: ManualClock, persist: int
) -> None:
    for i in range(2500):
        await ex.set_linked_pod(NS, f"u{i}", SVC, 1 if i % 5 else 2, -1)
    assert await ex.remove_pod_links(NS, SVC, 1, persist) == 2000
    counts = await ex.count_pod_links(NS, SVC)
    if persist:  # kept for the reconnect window as temporary links to the same pod
        assert counts == {1: 2000, 2: 500}
        assert await ex.get_linked_pod_if_persist(NS, "u1", SVC) is None
        clock.advance(persist)
    assert await ex.count_pod_links(NS, SVC) == {2: 500}
    assert await ex.remove_pod_links(NS, SVC, 1, 0) == 0


async def test_place_links_new_users_to_the_least_loaded_ready_pod(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    assert await ex.place_linked_pod(NS, "a", SVC, -1) is None  # no pod at all
    await ex.set_service_state(NS, SVC, 0, "ready")
    await ex.set_service_state(NS, SVC, 1, "ready")
    await ex.set_service_state(NS, SVC, 2, "draining")
    await ex.set_service_state(NS, SVC, 3, "ready", ttl_seconds=1)
    await ex.set_linked_pod(NS, "old", SVC, 0, -1)
    placed = [await ex.place_linked_pod(NS, f"n{i}", SVC, -1) for i in range(5)]
    # pod 1 and 3 start empty (tie: lowest id first), then the counts even out
    assert placed == [1, 3, 0, 1, 3]
    clock.advance(1)  # pod 3 stopped heartbeating
    assert await ex.place_linked_pod(NS, "late", SVC, -1) == 0
    assert await ex.place_linked_pod(NS, "drainee", SVC, -1, states=["draining"]) == 2
    assert await ex.place_linked_pod(NS, "nobody", SVC, -1, states=["gone"]) is None


async def test_place_keeps_and_refreshes_an_existing_link(
    ex: StatefulExecutor, clock: ManualClock
) -> None:
    await ex.set_service_state(NS, SVC, 0, "ready")
    await ex.set_linked_pod(NS, "u", SVC, 7, 5)  # pod 7 has no state: still kept
    clock.advance(4)
    assert await ex.place_linked_pod(NS, "u", SVC, 10) == 7
    info = await ex.get_link_info(NS, "u", SVC)
    assert info is not None and info.expires_at_ms == clock.now_ms() + 10_000
    assert await ex.place_linked_pod(NS, "u", SVC, -1, states=["gone"]) == 7
    info = await ex.get_link_info(NS, "u", SVC)
    assert info is not None and info.permanent


async def test_concurrent_placements_of_one_user_agree(ex: StatefulExecutor) -> None:
    for pod in range(4):
        await ex.set_service_state(NS, SVC, pod, "ready")
    results = await asyncio.gather(*(ex.place_linked_pod(NS, "u", SVC, -1) for _ in range(20)))
    assert len(set(results)) == 1
    assert await ex.get_linked_pod(NS, "u", SVC) == results[0]
