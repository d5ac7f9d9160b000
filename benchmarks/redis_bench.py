"""Per-operation latency of stateful on Redis, against raw redis-py doing the equivalent.

For each of the thirteen operations it times N sequential calls through a
`StatefulExecutor` and N calls of the plain redis-py command(s) a hand-written,
non-atomic version would send (same number of round trips, no Lua, no
validation), in the same run, on the same server, and prints both medians and
their ratio::

    python benchmarks/redis_bench.py [--url redis://127.0.0.1:6379/0] [-n 2000]

Both sides use one client each, with the server clock (the default). Keys go
under a fresh prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from stateful import StatefulExecutor
from stateful.backends.redis import from_url

Call = Callable[[], Awaitable[object]]
NS, SVC = "bench", "game"
BATCH = 100


def _cases(ex: StatefulExecutor, raw: Redis, prefix: str) -> list[tuple[str, str, Call, Call]]:
    """(operation, raw equivalent, stateful call, raw call) for each operation."""
    link = f"{prefix}raw:link:u1"
    perm = f"{prefix}raw:perm:u1"
    pods = f"{prefix}raw:pods"
    workload = f"{prefix}raw:workload"
    links = [f"{prefix}raw:link:u{i}" for i in range(BATCH)]
    uids = [f"u{i}" for i in range(BATCH)]
    return [
        ("set_service_state", "HSET",
         lambda: ex.set_service_state(NS, SVC, 1, "ready"),
         lambda: raw.hset(pods, "1", "ready")),
        ("get_service_state", "HGETALL",
         lambda: ex.get_service_state(NS, SVC),
         lambda: raw.hgetall(pods)),
        ("set_workload_state", "HSET",
         lambda: ex.set_workload_state(NS, SVC, "stable"),
         lambda: raw.hset(workload, SVC, "stable")),
        ("get_workload_state", "HMGET (3 fields)",
         lambda: ex.get_workload_state(NS, [SVC, "b", "c"]),
         lambda: raw.hmget(workload, [SVC, "b", "c"])),
        ("set_linked_pod", "SET … GET",
         lambda: ex.set_linked_pod(NS, "u1", SVC, 3, -1),
         lambda: raw.set(link, "3", get=True)),
        ("try_set_linked_pod", "SET … GET",
         lambda: ex.try_set_linked_pod(NS, "u1", SVC, 3, -1),
         lambda: raw.set(link, "3", get=True)),
        ("set_linked_pod_if_absent", "SET … NX GET",
         lambda: ex.set_linked_pod_if_absent(NS, "u1", SVC, 3, -1),
         lambda: raw.set(link, "3", nx=True, get=True)),
        ("get_linked_pod", "GET",
         lambda: ex.get_linked_pod(NS, "u1", SVC),
         lambda: raw.get(link)),
        ("get_linked_pod_if_persist", "GET",
         lambda: ex.get_linked_pod_if_persist(NS, "u1", SVC),
         lambda: raw.get(link)),
        (f"batch_get_linked_pod ({BATCH})", f"MGET ({BATCH} keys)",
         lambda: ex.batch_get_linked_pod(NS, uids, SVC),
         lambda: raw.mget(links)),
        ("remove_linked_pod (keep 60 s)", "SET … PX GET",
         lambda: ex.remove_linked_pod(NS, "u1", SVC, 60),
         lambda: raw.set(link, "3", px=60_000, get=True)),
        ("remove_linked_pod_with_id", "GETDEL",
         lambda: ex.remove_linked_pod_with_id(NS, "u1", SVC, 0, 3),
         lambda: raw.getdel(link)),
        ("get_link_service", "HGETALL",
         lambda: ex.get_link_service(NS, "u1"),
         lambda: raw.hgetall(perm)),
    ]


async def _median_us(call: Call, iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        await call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("STATEFUL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("-n", "--iterations", type=int, default=2000)
    options = parser.parse_args()
    prefix = f"stateful-bench:{uuid.uuid4().hex[:8]}:"
    raw = Redis.from_url(options.url)
    executor = StatefulExecutor(from_url(options.url, prefix=prefix))
    try:
        for uid in [f"u{i}" for i in range(0, BATCH, 2)]:  # half the batch is linked
            await executor.set_linked_pod(NS, uid, SVC, 1, -1)
            await raw.set(f"{prefix}raw:link:{uid}", "1")
        print(f"{options.iterations} calls each, median latency in µs, {options.url}")
        print("| operation | stateful | raw redis-py | raw commands | ratio |")
        print("|---|---:|---:|---|---:|")
        for name, equivalent, ours, theirs in _cases(executor, raw, prefix):
            for call in (ours, theirs):  # warm up both connections and caches
                for _ in range(50):
                    await call()
            # Alternate the two sides so that drift on the machine hits both alike.
            ours_us = theirs_us = 0.0
            rounds = 4
            for _ in range(rounds):
                ours_us += await _median_us(ours, options.iterations // rounds) / rounds
                theirs_us += await _median_us(theirs, options.iterations // rounds) / rounds
            print(
                f"| {name} | {ours_us:.0f} | {theirs_us:.0f} | {equivalent} "
                f"| {ours_us / theirs_us:.2f} |"
            )
    finally:
        keys = [key async for key in raw.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await raw.delete(*keys)
        await executor.aclose()
        await raw.aclose()


if __name__ == "__main__":
    asyncio.run(main())
