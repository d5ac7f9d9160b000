"""Server-side cost of the link scripts, before and after the hash layout (a measurement).

Run: ``.venv/bin/python -m tests.redis_backend.script_cost`` in a git checkout.
It spawns a private ``redis-server``, loads the scripts of commit ``fb56835``
(one string key per link plus a ``perm`` hash, no pod index) from git history
and today's, runs each case 3,000 times (50 in flight) in 5 rounds, and prints
the smallest ``usec_per_call`` of ``EVALSHA`` from ``INFO commandstats``: the
time Redis spent inside the script, without network or client.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from stateful.backends.redis.backend import _GET_LINKED_PODS, _SET_LINKED_POD
from tests.redis_backend.servers import RedisProcess

BEFORE = "fb56835"
CALLS, ROUNDS, IN_FLIGHT = 3_000, 5, 50


def _old_source(name: str) -> bytes:
    def show(file: str) -> bytes:
        return subprocess.run(
            ["git", "show", f"{BEFORE}:lua/{file}.lua"], check=True, capture_output=True
        ).stdout

    return show("_links") + b"\n" + show(name)


async def measure(port: int) -> dict[str, float]:
    """Smallest server microseconds per call of each case."""
    client = Redis(port=port)
    old_set = await client.script_load(_old_source("set_linked_pod"))
    old_get = await client.script_load(_old_source("get_linked_pods"))
    new_set = await client.script_load(_SET_LINKED_POD.source)
    new_get = await client.script_load(_GET_LINKED_PODS.source)
    ix = b"q:{n:s}:ix"

    def old_set_call(uid: str, pod: int) -> Awaitable[Any]:
        return client.evalsha(
            old_set, 2, f"p:{{n:{uid}}}:link:s", f"p:{{n:{uid}}}:perm", "", "s", str(pod), "-1"
        )

    def new_set_call(uid: str, pod: int) -> Awaitable[Any]:
        return client.evalsha(
            new_set, 1, f"q:{{n:{uid}}}", "", "s", uid, ix, "", str(pod), "-1"
        )

    cases: dict[str, Callable[[int], Awaitable[Any]]] = {
        "get_linked_pod, before": lambda i: client.evalsha(
            old_get, 1, "p:{n:u}:link:s", ""
        ),
        "get_linked_pod, now": lambda i: client.evalsha(
            new_get, 1, "q:{n:u}", "", "s"
        ),
        "set_linked_pod same pod, before": lambda i: old_set_call("u", 1),
        "set_linked_pod same pod, now": lambda i: new_set_call("u", 1),
        "set_linked_pod new uid, before": lambda i: old_set_call(f"x{i}", 1),
        "set_linked_pod new uid, now": lambda i: new_set_call(f"x{i}", 1),
        "set_linked_pod moving, before": lambda i: old_set_call("m", i % 8),
        "set_linked_pod moving, now": lambda i: new_set_call("m", i % 8),
    }
    best = dict.fromkeys(cases, float("inf"))
    for round_ in range(ROUNDS):
        for label, call in cases.items():
            await client.config_resetstat()
            for start in range(0, CALLS, IN_FLIGHT):
                await asyncio.gather(
                    *(call(round_ * CALLS + i) for i in range(start, start + IN_FLIGHT))
                )
            stats: dict[str, Any] = await client.info("commandstats")
            best[label] = min(best[label], float(stats["cmdstat_evalsha"]["usec_per_call"]))
    await client.aclose()
    return best


def main() -> None:
    """Spawn a private server, measure, print."""
    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory))
        try:
            best = asyncio.run(measure(server.port))
        finally:
            server.stop()
    print(f"| case | µs in Redis per call (min of {ROUNDS} rounds of {CALLS}) |")
    print("|---|---:|")
    for label, value in best.items():
        print(f"| {label} | {value:.2f} |")


if __name__ == "__main__":
    main()
