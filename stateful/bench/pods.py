"""Pods run (issue 11): count_pod_links, pod_links and remove_pod_links at size.

One service of 64 pods holding 1M links, of which pod 0 holds 100k (the rest
spread evenly over pods 1..63). It times `count_pod_links` over the service,
one full `pod_links` walk of pod 0, and `remove_pod_links` of pod 0's 100k
links, and checks each answer against what was loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stateful.bench.load import load, verify
from stateful.bench.measure import latency
from stateful.bench.targets import NS, Target

SERVICE = "pods"
PODS = 64


def duration(us: float) -> str:
    """Format microseconds readably (µs below 1 ms, else ms)."""
    return f"{us:,.0f} µs" if us < 1000 else f"{us / 1000:,.1f} ms"


def make_pod_of(total: int, big: int) -> Callable[[int], int]:
    """Uids below ``big`` go to pod 0, the others round-robin over pods 1..63."""
    def pod_of(i: int) -> int:
        return 0 if i < big else 1 + (i - big) % (PODS - 1)
    return pod_of


async def run(
    t: Target,
    *,
    total: int,
    big: int,
    bulk: bool,
    count_calls: int,
    emit: Callable[[str], None],
) -> None:
    """Load, then time the three pod operations; emit a markdown table."""
    ex = t.ex
    pod_of = make_pod_of(total, big)
    start = time.perf_counter()
    how, _ = await load(t, 0, total, SERVICE, pod_of, bulk=bulk)
    loaded_in = time.perf_counter() - start
    await verify(t, total, SERVICE, pod_of)
    emit(f"| {t.kind}: operation ({total:,} links, {PODS} pods; pod 0 holds {big:,}) "
         "| result | time | rate |")
    emit("|---|---|---:|---:|")
    emit(f"| load ({how}) | {total:,} links | {loaded_in:.1f} s "
         f"| {total / loaded_in:,.0f} links/s |")

    counts = await ex.count_pod_links(NS, SERVICE)
    if sum(counts.values()) != total or counts.get(0) != big or len(counts) != PODS:
        raise RuntimeError(f"count_pod_links disagrees with the load: {len(counts)} pods, "
                           f"{sum(counts.values())} links, pod 0: {counts.get(0)}")
    timing = await latency(lambda i: ex.count_pod_links(NS, SERVICE), calls=count_calls,
                           seconds=60)
    emit(f"| count_pod_links | {PODS} pods, {total:,} links | p50 {duration(timing.p50_us)},"
         f" p99 {duration(timing.p99_us)} ({timing.calls} calls) | |")

    start = time.perf_counter()
    seen = 0
    async for _ in ex.pod_links(NS, SERVICE, 0):
        seen += 1
    walked = time.perf_counter() - start
    if seen != big:
        raise RuntimeError(f"pod_links yielded {seen} uids, expected {big}")
    emit(f"| pod_links (pod 0, page 1000) | {seen:,} uids | {walked:.2f} s "
         f"| {seen / walked:,.0f} uids/s |")

    start = time.perf_counter()
    removed = await ex.remove_pod_links(NS, SERVICE, 0, 0)
    took = time.perf_counter() - start
    if removed != big:
        raise RuntimeError(f"remove_pod_links removed {removed}, expected {big}")
    emit(f"| remove_pod_links (pod 0) | {removed:,} removed | {took:.2f} s "
         f"| {removed / took:,.0f} links/s |")
