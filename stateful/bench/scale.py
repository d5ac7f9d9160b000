"""Scale run: load 1k, 1M, 10M links; read latency, load rate and bytes per link at each.

Sizes are cumulative: the store grows from one size to the next, and after
each step it reports the load rate of that step, the store's bytes per link
(growth since the empty start, divided by the links held) and p50/p99 of
sequential `get_linked_pod` calls on random loaded uids. Flat p50/p99 across
sizes is the goal. On Redis (sizes up to 1M) it also loads the same number of
plain ``SET key pod`` string keys, pipelined, to give the "one small key per
link" baseline, and deletes them again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from stateful.bench.load import load, uid, verify
from stateful.bench.measure import Call, Latency, latency
from stateful.bench.targets import NS, RedisTarget, Target

SERVICE = "scale"
PODS = 64


def pod_of(i: int) -> int:
    """Spread links over 64 pods."""
    return i % PODS


@dataclass(frozen=True)
class Step:
    """What one size reports."""

    size: int
    how: str
    load_rate: float
    bytes_per_link: float | None
    raw_bytes_per_link: float | None
    read: Latency


def _reader(t: Target, picks: list[str]) -> Call:
    ex = t.ex
    return lambda i: ex.get_linked_pod(NS, picks[i], SERVICE)


async def plain_key_bytes(t: RedisTarget, n: int) -> float:
    """Bytes per key of ``n`` plain string keys (``SET key pod``), measured then deleted."""
    from stateful.bench.targets import delete_redis_prefix

    prefix = f"{t.prefix}plain:"
    before = await t.store_bytes() or 0
    pipe = t.client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}{uid(i)}", str(pod_of(i)))
        if len(pipe) >= 10_000:
            await pipe.execute()
    await pipe.execute()
    after = await t.store_bytes() or 0
    await delete_redis_prefix(t.client, prefix)
    return (after - before) / n


async def run(
    t: Target,
    sizes: list[int],
    *,
    bulk: bool,
    reads: int,
    read_seconds: float,
    load_seconds: float | None,
    emit: Callable[[str], None],
) -> list[Step]:
    """Grow the store through ``sizes``; emit one markdown row per size.

    ``load_seconds`` bounds each step's loading (API path): the step then
    reports the links it reached, and the run ends there.
    """
    base = await t.store_bytes()
    emit(f"| {t.kind}: links | loaded by | load rate (links/s) | bytes per link "
         f"({t.store_bytes_source()}) | get_linked_pod p50 µs | p99 µs | reads |")
    emit("|---:|---|---:|---:|---:|---:|---:|")
    steps = []
    held = 0
    for size in sizes:
        if size <= held:
            continue
        start = time.perf_counter()
        deadline = None if load_seconds is None else start + load_seconds
        how, end = await load(t, held, size, SERVICE, pod_of, bulk=bulk, deadline=deadline)
        rate = (end - held) / (time.perf_counter() - start)
        held = end
        if end < size:
            how += f"; stopped after {load_seconds:.0f} s"
        await verify(t, held, SERVICE, pod_of)
        now = await t.store_bytes()
        per_link = None if now is None or base is None else (now - base) / held
        raw = None
        if isinstance(t, RedisTarget) and held <= 1_000_000:
            raw = await plain_key_bytes(t, held)
        rng = random.Random(size)
        picks = [uid(rng.randrange(held)) for _ in range(reads)]
        read = await latency(_reader(t, picks), calls=reads, seconds=read_seconds)
        step = Step(held, how, rate, per_link, raw, read)
        steps.append(step)
        bytes_cell = "n/a" if per_link is None else f"{per_link:,.0f}"
        if raw is not None:
            bytes_cell += f" (plain string key: {raw:,.0f})"
        emit(f"| {held:,} | {how} | {rate:,.0f} | {bytes_cell} | {read.p50_us:,.0f} "
             f"| {read.p99_us:,.0f} | {read.calls:,} |")
        if end < size:
            break
    return steps
