"""Memory per link: the backend's layout against one plain string key per link.

Run: ``.venv/bin/python -m tests.redis_backend.memory_usage [links] [pods]``
(default 100,000 links over 8 pods). It spawns a private ``redis-server``
(so nothing else moves ``used_memory``), then for each layout measures the
growth of ``INFO memory``'s ``used_memory`` after loading the links, divided
by their number:

* ``plain``: ``SET P{ns:uid}:svc <pod>``, the minimal hand-written layout;
* ``plain+times``: the same key holding ``<pod>:<updated_ms>``, i.e. what the
  backend must keep per link (``get_link_info`` needs the update time);
* ``stateful``: links made by `set_linked_pod` (permanent); reported in total,
  and without the pod indexes (what deleting the index keys gives back).

``used_memory`` is taken less ``mem_clients_normal`` (the 64 loading
connections' buffers are not data).

Identifiers: namespace ``prod``, uids ``user-0000001``…, service ``game``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from stateful import StatefulExecutor
from stateful.backends.redis import RedisBackend
from tests.redis_backend.servers import RedisProcess

NS, SVC = "prod", "game"
PREFIX = "stateful:"
CONCURRENCY = 64


async def _used(client: Redis) -> int:
    """Dataset memory: ``used_memory`` less the clients' buffers (64 connections load)."""
    info: dict[str, Any] = await client.info("memory")
    return int(info["used_memory"]) - int(info["mem_clients_normal"])


async def _in_parallel(count: int, call: Any) -> None:
    async def worker(start: int) -> None:
        for i in range(start, count, CONCURRENCY):
            await call(i)

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


async def measure(port: int, links: int, pods: int) -> dict[str, float]:
    """Bytes per link of each layout on the server at ``port`` (flushed between runs)."""
    results: dict[str, float] = {}
    async with Redis(port=port) as client:
        uids = [f"user-{i:07}" for i in range(links)]
        now_ms = 1_764_300_000_000  # 13 digits, as the server clock gives

        for label, value in (("plain", None), ("plain+times", now_ms)):
            await client.flushall()
            before = await _used(client)
            pipe = client.pipeline(transaction=False)
            for i, uid in enumerate(uids):
                pod = str(i % pods) if value is None else f"{i % pods}:{value}"
                pipe.set(f"{PREFIX}{{{NS}:{uid}}}:{SVC}", pod)
                if len(pipe) >= 1000:
                    await pipe.execute()
            await pipe.execute()
            results[label] = (await _used(client) - before) / links

        await client.flushall()
        before = await _used(client)
        backend = RedisBackend(Redis(port=port), prefix=PREFIX)
        async with StatefulExecutor(backend) as ex:

            async def link(i: int) -> None:
                await ex.set_linked_pod(NS, uids[i], SVC, i % pods, -1)

            await _in_parallel(links, link)
            total = await _used(client) - before
            # The index exactly: what deleting its keys gives back (MEMORY USAGE
            # counts a zset's dict entries at 24 bytes; jemalloc serves 32).
            with_index = await _used(client)
            index_keys = [backend.keys.index_keys(NS, SVC, pod)[0] for pod in range(pods)]
            index_keys += backend.keys.index_keys(NS, SVC, 0)[1:]
            sample = backend.keys.link_hash(NS, uids[0])
            encoding = await client.object("encoding", sample)
            link_usage = float(await client.memory_usage(sample, samples=0) or 0)
            await client.delete(*index_keys)
            index = with_index - await _used(client)
            results["stateful"] = total / links
            results["stateful links only"] = (total - index) / links
            results["stateful index only"] = index / links
            results["MEMORY USAGE of one link hash"] = link_usage
            results["link hash encoding: listpack"] = float(encoding in (b"listpack", "listpack"))
        await backend.client.aclose()
    return results


def main() -> None:
    """Spawn a private server, measure, print a table."""
    links = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory))
        try:
            results = asyncio.run(measure(server.port, links, pods))
        finally:
            server.stop()
    print(f"{links} permanent links over {pods} pods")
    print("| layout | bytes per link | vs plain |")
    print("|---|---:|---:|")
    for label in ("plain", "plain+times", "stateful links only", "stateful index only",
                  "stateful"):
        value = results[label]
        print(f"| {label} | {value:.1f} | {value / results['plain']:.2f}x |")
    for label in ("MEMORY USAGE of one link hash",
                  "link hash encoding: listpack"):
        print(f"{label}: {results[label]:.0f}")


if __name__ == "__main__":
    main()
