"""The Redis call path against raw redis-py, side by side (opt-in: a measurement, not a check).

Run with ``STATEFUL_CALLPATH_BENCH=1 pytest tests/redis_backend/test_client_speed.py -s``
(``STATEFUL_CALLPATH_ROUNDS``, ``STATEFUL_CALLPATH_OPS`` tune it). Each case
alternates rounds of ours and theirs (the order flips every round), and
reports median throughput, the median of per-round ratios, and the client
process's CPU time per operation (less sensitive to a busy machine than wall
time). The official harness is ``stateful bench``; this one isolates the call
path: executor, backend, scripts, pool and connection.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from stateful import StatefulExecutor
from stateful.backends.redis.client import execute_command
from tests.redis_backend.scratch import delete_prefix
from tests.redis_backend.test_client_cancel import make_backend

pytestmark = pytest.mark.skipif(
    os.environ.get("STATEFUL_CALLPATH_BENCH") != "1",
    reason="a measurement: set STATEFUL_CALLPATH_BENCH=1",
)

ROUNDS = int(os.environ.get("STATEFUL_CALLPATH_ROUNDS", "9"))
OPS = int(os.environ.get("STATEFUL_CALLPATH_OPS", "2048"))
#: The raw side of set_linked_pod: the least a hand-written link write sends.
MINIMAL_WRITE = (
    "redis.call('SET', KEYS[1], ARGV[1]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) return 1"
)

Call = Callable[[int, int], Awaitable[object]]


async def _run(call: Call, concurrency: int) -> tuple[float, float]:
    """Return (operations per second, client CPU µs per operation)."""
    per_worker = OPS // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await call(w, i)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    ops = per_worker * concurrency
    return ops / (time.perf_counter() - wall), (time.process_time() - cpu) / ops * 1e6


async def _compare(name: str, ours: Call, theirs: Call, concurrency: int) -> float:
    rates: dict[str, list[float]] = {"ours": [], "theirs": []}
    cpus: dict[str, list[float]] = {"ours": [], "theirs": []}
    ratios = []
    for round_ in range(ROUNDS):
        order = [("ours", ours), ("theirs", theirs)]
        for side, call in order if round_ % 2 == 0 else order[::-1]:
            rate, cpu = await _run(call, concurrency)
            rates[side].append(rate)
            cpus[side].append(cpu)
        ratios.append(rates["ours"][-1] / rates["theirs"][-1])
    ratio = statistics.median(ratios)
    print(
        f"| {name} | {concurrency} | {statistics.median(rates['ours']):,.0f} "
        f"| {statistics.median(rates['theirs']):,.0f} | {ratio:.2f} "
        f"| {statistics.median(cpus['ours']):.0f} / {statistics.median(cpus['theirs']):.0f} |"
    )
    return statistics.median(cpus["ours"]) / statistics.median(cpus["theirs"])


async def test_call_path_against_raw_redis_py(redis_url: str) -> None:
    """Print the table; the client layer alone must not cost more CPU than redis-py's."""
    backend = make_backend(redis_url)
    executor = StatefulExecutor(backend)
    raw = Redis.from_url(redis_url)
    prefix = f"stateful-test:raw:{uuid.uuid4().hex[:8]}:"
    try:
        sha = await raw.script_load(MINIMAL_WRITE)
        await executor.set_linked_pod("ns", "hot", "svc", 3, -1)
        await raw.set(f"{prefix}hot", "3")
        uids = [f"u{i}" for i in range(10_000)]
        raw_keys = [f"{prefix}{uid}" for uid in uids]
        await raw.mset(dict.fromkeys(raw_keys, "1"))
        for start in range(0, 10_000, 1000):
            await asyncio.gather(
                *(
                    executor.set_linked_pod("ns", u, "svc", 1, -1)
                    for u in uids[start : start + 1000]
                )
            )
        print("\n| case | concurrency | ours ops/s | raw ops/s | ratio | CPU µs/op ours / raw |")
        print("|---|---|---|---|---|---|")
        client_cpu = 0.0
        for concurrency in (1, 64):
            await _compare(
                "get_linked_pod vs GET",
                lambda w, i: executor.get_linked_pod("ns", "hot", "svc"),
                lambda w, i: raw.execute_command("GET", f"{prefix}hot"),  # type: ignore[no-untyped-call]
                concurrency,
            )
        for concurrency in (1, 64):
            await _compare(
                "set_linked_pod vs EVALSHA 2-key",
                lambda w, i: executor.set_linked_pod("ns", f"s{w}", "svc", i % 7, -1),
                lambda w, i: raw.execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", sha, 2, f"{prefix}s{w}", f"{prefix}s{w}:p", str(i % 7), "svc"
                ),
                concurrency,
            )
        for concurrency in (1, 64):
            client_cpu = max(
                client_cpu,
                await _compare(
                    "client layer: our GET vs redis-py GET",
                    lambda w, i: execute_command(backend.client, "GET", f"{prefix}hot"),
                    lambda w, i: raw.execute_command("GET", f"{prefix}hot"),  # type: ignore[no-untyped-call]
                    concurrency,
                ),
            )
        ours_rates: list[float] = []
        raw_rates: list[float] = []
        for round_ in range(ROUNDS):
            sides: list[tuple[list[float], Callable[[], Awaitable[object]]]] = [
                (ours_rates, lambda: executor.batch_get_linked_pod("ns", uids, "svc")),
                (raw_rates, lambda: raw.mget(raw_keys)),
            ]
            for rates, call in sides if round_ % 2 == 0 else sides[::-1]:
                started = time.perf_counter()
                await call()
                rates.append(1 / (time.perf_counter() - started))
        ratio = statistics.median(o / r for o, r in zip(ours_rates, raw_rates, strict=True))
        print(
            f"| batch_get_linked_pod 10k uids vs MGET 10k keys | 1 "
            f"| {statistics.median(ours_rates):.1f} | {statistics.median(raw_rates):.1f} "
            f"| {ratio:.2f} | |"
        )
        assert client_cpu < 1.1
    finally:
        await delete_prefix(raw, prefix)
        await delete_prefix(backend.client, backend.keys.prefix)
        await raw.aclose()
        await executor.aclose()
