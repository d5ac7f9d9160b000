"""Placement spread: a burst of new users over the ready pods stays even, on every backend.

The figures (users per pod, max/min) are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from stateful import ManualClock, StatefulExecutor

NS, SVC = "ns", "game"
PODS = 8
USERS = int(os.environ.get("STATEFUL_PLACEMENT_USERS", "10000"))
pytestmark = pytest.mark.usefixtures("store")


async def _burst(executors: list[StatefulExecutor], users: int) -> dict[int, int]:
    async def place(index: int) -> int | None:
        return await executors[index % len(executors)].place_linked_pod(
            NS, f"user-{index}", SVC, -1
        )

    placed = await asyncio.gather(*(place(i) for i in range(users)))
    assert None not in placed
    return await executors[0].count_pod_links(NS, SVC)


async def test_a_burst_of_new_users_spreads_evenly_over_the_ready_pods(
    store: tuple[StatefulExecutor, ManualClock], request: pytest.FixtureRequest
) -> None:
    ex, _ = store
    for pod in range(PODS):
        await ex.set_service_state(NS, SVC, pod, "ready")
    await ex.set_service_state(NS, SVC, PODS, "draining")  # never chosen
    counts = await _burst([ex], USERS)
    backend = request.node.callspec.params["store"]
    print(f"\nplacement {backend}: {USERS} users over {PODS} pods, one executor: "
          f"{dict(sorted(counts.items()))}, max/min {max(counts.values())}/{min(counts.values())}")
    assert sum(counts.values()) == USERS
    assert set(counts) == set(range(PODS))
    # One executor knows every placement it made: the spread is exact.
    assert max(counts.values()) - min(counts.values()) <= 1


# The extra routers share the fixture's backend, which the fixture closes.
@pytest.mark.filterwarnings("ignore:unclosed StatefulExecutor:ResourceWarning")
async def test_several_routers_placing_at_once_stay_close_to_even(
    store: tuple[StatefulExecutor, ManualClock], request: pytest.FixtureRequest
) -> None:
    ex, _ = store
    backend = request.node.callspec.params["store"]
    for pod in range(PODS):
        await ex.set_service_state(NS, SVC, pod, "ready")
    # Each executor is a router of its own: it does not see the others' choices.
    routers = [ex, *(StatefulExecutor(ex.backend) for _ in range(3))]
    counts = await _burst(routers, USERS // 5)
    print(f"\nplacement {backend}: {USERS // 5} users over {PODS} pods, 4 routers: "
          f"{dict(sorted(counts.items()))}, max/min {max(counts.values())}/{min(counts.values())}")
    assert sum(counts.values()) == USERS // 5
    # Routers do not see each other's in-flight choices: bounded unevenness.
    assert max(counts.values()) <= 2 * min(counts.values())
