"""Where a memory-backend call spends its time, layer by layer. Not a test.

Run from the repository root::

    .venv/bin/python -m benchmarks.memory_callpath [--rounds 9] [--calls 100000]

Each layer is timed as CPU time per call (``time.process_time``: less
sensitive to a busy machine than wall time) over ``--calls`` sequential
awaits, in rounds that take turns; the figure is the median of the rounds.
The layers, from the raw side of ``stateful bench memory://`` up:

* ``raw dict``: the bench's raw side, a dict lookup behind ``async def``;
* ``validation``: checking namespace, uid and service (no await);
* ``backend``: `MemoryBackend.get_linked_pod` awaited directly;
* ``dispatch``: the executor's `_run` around the backend call;
* ``executor``: the public `StatefulExecutor.get_linked_pod`. With no timeout
  and no observer it calls the backend's plain function
  (`Backend.instant_links`), so it skips the two layers above it.

The same for ``set_linked_pod`` (validation then also checks pod and TTL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import stateful
from stateful import validation as v

Layer = Callable[[], Awaitable[object] | object]


async def _per_call_ns(layer: Layer, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        result = layer()
        if isinstance(result, Awaitable):
            await result
    return (time.process_time() - start) / calls * 1e9


async def main(rounds: int, calls: int) -> None:
    """Time each layer for ``rounds`` rounds of ``calls`` calls; print the medians."""
    executor = stateful.connect("memory://")
    backend = executor.backend
    await executor.set_linked_pod("ns", "u1", "svc", 3, -1)
    links = {"u1": 3}

    async def raw_get() -> object:
        return links.get("u1")

    async def raw_set() -> object:
        previous = links.get("u1")
        links["u1"] = 3
        return previous

    run = executor._run  # the layer under measurement
    layers: dict[str, Layer] = {
        "get: raw dict": raw_get,
        "get: validation": lambda: v.check_link_key("ns", "u1", "svc"),
        "get: backend": lambda: backend.get_linked_pod("ns", "u1", "svc"),
        "get: dispatch + backend": lambda: run(
            "get_linked_pod", "ns", "svc", backend.get_linked_pod("ns", "u1", "svc")
        ),
        "get: executor": lambda: executor.get_linked_pod("ns", "u1", "svc"),
        "set: raw dict": raw_set,
        "set: validation": lambda: (
            v.check_link_key("ns", "u1", "svc"),
            v.check_pod_id(3),
            v.check_set_persist(-1),
        ),
        "set: backend": lambda: backend.set_linked_pod("ns", "u1", "svc", 3, -1),
        "set: dispatch + backend": lambda: run(
            "set_linked_pod", "ns", "svc", backend.set_linked_pod("ns", "u1", "svc", 3, -1)
        ),
        "set: executor": lambda: executor.set_linked_pod("ns", "u1", "svc", 3, -1),
    }
    figures: dict[str, list[float]] = {name: [] for name in layers}
    for round_ in range(rounds):
        order = list(layers) if round_ % 2 == 0 else list(reversed(layers))
        for name in order:
            figures[name].append(await _per_call_ns(layers[name], calls))
    await executor.aclose()
    print(f"| layer | CPU ns per call (median of {rounds} rounds of {calls:,}) |")
    print("|---|---:|")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values):,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=100_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.calls))
