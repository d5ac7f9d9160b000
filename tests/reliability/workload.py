"""Random mixes of link operations on a few hot keys, recorded for the checker.

Used in-process (memory backend, cancellation storms) and as a child process::

    python -m tests.reliability.workload '<config JSON>'

which runs its rounds against ``config["url"]`` and prints one JSON object,
``{"rounds": [<History JSON>, ...]}``, on stdout. Processes of one run meet at
a file barrier before each round so that their calls overlap in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stateful
from stateful import ManualClock
from stateful.testing.history import History, HistoryRecorder

#: Clock of round 0. The clock is held still within a round and moves between
#: rounds by these steps (cycled): onto the last live millisecond of the 30 s
#: links of round 0, onto their expiry instant, then past the others.
START_MS = 1_800_000_000_000
CLOCK_STEPS_MS = (29_999, 1, 60_000, 240_000, 3_600_000)


def round_time(round_no: int) -> int:
    """The store's clock (ms) during round ``round_no``."""
    return START_MS + sum(CLOCK_STEPS_MS[i % len(CLOCK_STEPS_MS)] for i in range(round_no))


@dataclass(frozen=True)
class Plan:
    """What one round touches: a namespace, its hot keys, the pods to use."""

    namespace: str
    uids: tuple[str, ...]
    services: tuple[str, ...]
    pods: tuple[int, ...]


def plan_for(base: str) -> Plan:
    """A run's plan: a fresh namespace (every history starts from an empty store)."""
    return Plan(
        namespace=base,
        # Identifiers that would alias under a naive key encoding.
        uids=("u:1", "u", "U "),
        services=("s", "s:{x}"),
        pods=(0, 1, 2, 7),
    )


def random_call(rng: random.Random, plan: Plan) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """One random link operation of the plan (every link operation of the API can come)."""
    ns, uid, svc = plan.namespace, rng.choice(plan.uids), rng.choice(plan.services)
    pod = rng.choice(plan.pods)
    ttl = rng.choice((-1, -1, 30, 300))
    removal = rng.choice((-1, 0, 60))
    roll = rng.random()
    if roll < 0.12:
        return "set_linked_pod", (ns, uid, svc, pod, ttl), {}
    if roll < 0.22:
        return "try_set_linked_pod", (ns, uid, svc, pod, ttl), {}
    if roll < 0.34:
        return "set_linked_pod_if_absent", (ns, uid, svc, pod, ttl), {}
    if roll < 0.43:
        return "get_linked_pod", (ns, uid, svc), {}
    if roll < 0.48:
        return "get_linked_pod_if_persist", (ns, uid, svc), {}
    if roll < 0.54:
        return "remove_linked_pod", (ns, uid, svc, removal), {}
    if roll < 0.60:
        return "remove_linked_pod_with_id", (ns, uid, svc, removal, pod), {}
    if roll < 0.66:
        return "get_link_info", (ns, uid, svc), {}
    if roll < 0.71:
        return "batch_get_linked_pod", (ns, list(plan.uids), svc), {}
    if roll < 0.75:
        return "get_link_service", (ns, uid), {}
    if roll < 0.82:
        return "place_linked_pod", (ns, uid, svc, ttl), {}
    if roll < 0.87:
        return "pod_links", (ns, svc, pod), {"page_size": 2}
    if roll < 0.89:
        return "count_pod_links", (ns, svc), {}
    if roll < 0.91:
        return "remove_pod_links", (ns, svc, pod, removal), {}
    # Pod states come and go too (heartbeats with a TTL), which steers placements.
    if roll < 0.95:
        state = rng.choice(("ready", "ready", "draining"))
        return "set_service_state", (ns, svc, pod, state), {"ttl_seconds": rng.choice((None, 30))}
    if roll < 0.97:
        return "remove_service_state", (ns, svc, pod), {}
    return "get_service_state", (ns, svc), {}


async def prepare(recorder: HistoryRecorder, plan: Plan) -> None:
    """Give every pod of the plan a state, so that placements have somewhere to go.

    Recorded like any call: the checker starts from an empty store.
    """
    for svc in plan.services:
        for pod in plan.pods:
            state = "draining" if pod == 7 else "ready"
            await recorder.call("set_service_state", plan.namespace, svc, pod, state)


async def run_client(
    recorder: HistoryRecorder, plan: Plan, seed: int | str, operations: int, *, swallow: bool = True
) -> None:
    """Make ``operations`` random calls in a row; failures are recorded, not raised."""
    rng = random.Random(seed)
    for _ in range(operations):
        name, args, kwargs = random_call(rng, plan)
        try:
            await recorder.call(name, *args, **kwargs)
        except stateful.StatefulError:
            if not swallow:
                raise


def _barrier(folder: Path, name: str, processes: int, me: str, limit_s: float = 60.0) -> None:
    """Wait until every process has reached the barrier ``name`` (a file each)."""
    (folder / f"{name}.{me}").touch()
    deadline = time.monotonic() + limit_s
    while len(list(folder.glob(f"{name}.*"))) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {name}: the other processes never came")
        time.sleep(0.005)


async def child(config: dict[str, Any]) -> dict[str, Any]:
    """Run every round of one process: its own executors, connections and clients."""
    me = f"p{config['process']}"
    clock = ManualClock(START_MS)
    executors = [
        stateful.connect(config["url"], clock=clock, **config["options"])
        for _ in range(config["executors"])
    ]
    rounds: list[str] = []
    plan = plan_for(config["base"])
    try:
        for round_no in range(config["rounds"]):
            # Every process finished the previous round: the clock may move.
            _barrier(Path(config["barrier"]), f"{round_no}-clock", config["processes"], me)
            clock.advance_ms(round_time(round_no) - clock.now_ms())
            history = History()
            setup = HistoryRecorder(executors[0], client=f"{me}prep", history=history, clock=clock)
            await prepare(setup, plan)
            _barrier(Path(config["barrier"]), f"{round_no}-go", config["processes"], me)
            recorders = [
                HistoryRecorder(
                    executors[c % len(executors)], client=f"{me}c{c}", history=history, clock=clock
                )
                for c in range(config["clients"])
            ]
            await asyncio.gather(
                *(
                    run_client(rec, plan, f"{config['seed']}-{me}-{c}-{round_no}", config["ops"])
                    for c, rec in enumerate(recorders)
                )
            )
            rounds.append(history.to_json())
    finally:
        for executor in executors:
            await executor.aclose()
    return {"rounds": rounds}


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    output = asyncio.run(child(settings))
    sys.stdout.write(json.dumps(output))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: the parent waits on this process
