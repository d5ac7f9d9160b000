"""Timing of the pod operations on a private server (a measurement, not a test).

Run: ``.venv/bin/python -m tests.redis_backend.pod_timing [links] [pods] [cluster]``
(default 100,000 links over 8 pods, standalone). Loads ``links`` permanent
links (uids ``user-0000001``…) with 64 concurrent `set_linked_pod` calls, then
times `count_pod_links` of the service, `pod_links` over pod 0 (page 1,000)
and `remove_pod_links` of pod 0, each once, wall clock.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from stateful import StatefulExecutor
from stateful.backends.redis import from_url
from tests.redis_backend.servers import RedisClusterProcesses, RedisProcess

NS, SVC = "prod", "game"
CONCURRENCY = 64


async def run(url: str, links: int, pods: int) -> None:
    """Load, then time each pod operation once and print it."""
    async with StatefulExecutor(from_url(url)) as ex:
        started = time.perf_counter()

        async def worker(start: int) -> None:
            for i in range(start, links, CONCURRENCY):
                await ex.set_linked_pod(NS, f"user-{i:07}", SVC, i % pods, -1)

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        load = time.perf_counter() - started
        print(f"load {links} links over {pods} pods: {load:.1f} s ({links / load:.0f}/s)")
        started = time.perf_counter()
        counts = await ex.count_pod_links(NS, SVC)
        took = time.perf_counter() - started
        assert sum(counts.values()) == links
        print(f"count_pod_links ({links} links, {pods} pods): {took * 1000:.0f} ms")
        started = time.perf_counter()
        walked = sum([1 async for _ in ex.pod_links(NS, SVC, 0)])
        took = time.perf_counter() - started
        print(f"pod_links over {walked} links: {took * 1000:.0f} ms")
        started = time.perf_counter()
        removed = await ex.remove_pod_links(NS, SVC, 0, 0)
        took = time.perf_counter() - started
        print(f"remove_pod_links of {removed} links: {took * 1000:.0f} ms")


def main() -> None:
    """Spawn a private standalone server (or a 3-master cluster) and time."""
    links = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    cluster = len(sys.argv) > 3 and sys.argv[3] == "cluster"
    with tempfile.TemporaryDirectory() as directory:
        if cluster:
            servers = RedisClusterProcesses(Path(directory))
            try:
                asyncio.run(run(servers.url, links, pods))
            finally:
                servers.stop()
        else:
            server = RedisProcess(Path(directory))
            try:
                asyncio.run(run(server.url, links, pods))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
