"""Executor overhead on the memory backend: ``StatefulExecutor`` vs calling the backend directly.

Not a test. Run: ``.venv/bin/python -m benchmarks.memory_bench [--n N]``. The
baseline is the same `MemoryBackend` method awaited without the executor, so
the ratio is the price of validation, timeout handling and the shielded task.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from stateful import StatefulExecutor
from stateful.backends.memory import MemoryBackend

Call = Callable[[int], Awaitable[object]]


async def timed(n: int, call: Call) -> float:
    """Return the mean seconds per call over ``n`` sequential calls."""
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - start) / n


async def main(n: int) -> None:
    """Print µs per operation with and without the executor, and their ratio."""
    backend = MemoryBackend()
    ex = StatefulExecutor(backend)
    uids = [f"user-{i}" for i in range(1000)]
    for i, uid in enumerate(uids):
        await backend.set_linked_pod("ns", uid, "svc", i % 8, -1)
    cases: dict[str, tuple[Call, Call]] = {
        "get_linked_pod": (
            lambda i: ex.get_linked_pod("ns", uids[i % 1000], "svc"),
            lambda i: backend.get_linked_pod("ns", uids[i % 1000], "svc"),
        ),
        "set_linked_pod": (
            lambda i: ex.set_linked_pod("ns", uids[i % 1000], "svc", i % 8, 60),
            lambda i: backend.set_linked_pod("ns", uids[i % 1000], "svc", i % 8, 60),
        ),
        "batch_get_linked_pod(100)": (
            lambda i: ex.batch_get_linked_pod("ns", uids[:100], "svc"),
            lambda i: backend.batch_get_linked_pod("ns", uids[:100], "svc"),
        ),
    }
    print(f"{'operation':28} {'executor µs':>12} {'backend µs':>11} {'ratio':>6}")
    for name, (through_executor, direct) in cases.items():
        await timed(n // 10, direct)  # warm up
        base = await timed(n, direct)
        ours = await timed(n, through_executor)
        print(f"{name:28} {ours * 1e6:12.2f} {base * 1e6:11.2f} {ours / base:6.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
