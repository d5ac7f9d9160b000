"""Timing: throughput at a concurrency, interleaved rounds, latency percentiles.

The method follows MagicStack's pgbench (the asyncpg benchmark) and redis-py's
own benchmarks: warm every connection up first, then let ``concurrency``
tasks call the operation back to back for a fixed wall-clock time and count
completed calls. ``stateful`` and the raw driver take turns in rounds (the
order flips every round) so that load elsewhere on the machine, which comes
and goes, lands on both sides alike; each side's figure is the median of its
rounds. Nothing here asserts a time: benchmarks are not tests.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: One call of an operation; the argument is a running counter, for callers
#: that spread calls over many keys.
Call = Callable[[int], Awaitable[object]]


async def throughput(call: Call, concurrency: int, seconds: float) -> float:
    """Return completed calls per second of ``concurrency`` tasks looping on ``call``.

    Every task stops at the same deadline; calls still running then are
    awaited (not counted) so that the next measurement starts from an idle
    connection pool.
    """
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def worker(slot: int) -> None:
        i = slot
        done = 0
        while time.perf_counter() < deadline:
            await call(i)
            i += concurrency
            done += 1
        counts[slot] = done

    start = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


@dataclass(frozen=True)
class Comparison:
    """Median throughput of both sides over the rounds, in calls per second."""

    ours: float
    raw: float
    rounds: int
    #: Largest distance of a round from its side's median, as a fraction of
    #: the median: how much the machine moved during the measurement.
    spread: float

    @property
    def ratio(self) -> float:
        """Throughput of stateful divided by the raw driver's (1.0: no overhead)."""
        return self.ours / self.raw if self.raw else float("nan")


async def compare(
    ours: Call, raw: Call, *, concurrency: int, seconds: float, rounds: int
) -> Comparison:
    """Alternate ``ours`` and ``raw`` for ``rounds`` rounds of ``seconds`` each.

    A warm-up of each side (half a round, at least 0.2 s) fills connection pools,
    prepared-statement and script caches before anything is counted.
    """
    warm = max(seconds / 2, 0.2)
    await throughput(raw, concurrency, warm)
    await throughput(ours, concurrency, warm)
    mine: list[float] = []
    base: list[float] = []
    for r in range(rounds):
        if r % 2:
            mine.append(await throughput(ours, concurrency, seconds))
            base.append(await throughput(raw, concurrency, seconds))
        else:
            base.append(await throughput(raw, concurrency, seconds))
            mine.append(await throughput(ours, concurrency, seconds))
    mid_mine, mid_base = statistics.median(mine), statistics.median(base)
    spread = max(
        max(abs(x - mid_mine) for x in mine) / mid_mine if mid_mine else 0.0,
        max(abs(x - mid_base) for x in base) / mid_base if mid_base else 0.0,
    )
    return Comparison(mid_mine, mid_base, rounds, spread)


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of sequential calls, in microseconds."""

    p50_us: float
    p99_us: float
    calls: int


async def latency(call: Call, *, calls: int, seconds: float) -> Latency:
    """Time up to ``calls`` sequential calls (stopping after ``seconds``); return p50/p99."""
    samples: list[int] = []
    deadline = time.perf_counter() + seconds
    for i in range(calls):
        start = time.perf_counter_ns()
        await call(i)
        samples.append(time.perf_counter_ns() - start)
        if time.perf_counter() > deadline:
            break
    return percentiles(samples)


def percentiles(samples_ns: list[int]) -> Latency:
    """Return p50 and p99 of nanosecond samples (nearest rank), in microseconds."""
    if not samples_ns:
        return Latency(float("nan"), float("nan"), 0)
    ordered = sorted(samples_ns)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return Latency(rank(0.50), rank(0.99), len(ordered))
