"""Filling a store with many links: through the API, or in bulk for SQL.

Through the API is the honest load rate (what a router achieves). Millions of
links through the API take too long on SQL for a benchmark run (one
transaction per link), so SQL targets can be filled in bulk instead: rows
built exactly as the backend builds them (its own key functions), inserted in
large batches straight into its links table. `verify` then reads samples back
through the API, so a loader that fell out of step with the schema shows up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from stateful.bench.targets import NS, RedisTarget, SQLTarget, Target

PodOf = Callable[[int], int]


def uid(i: int) -> str:
    """Return the i-th benchmark uid."""
    return f"user-{i}"


async def load_api(
    t: Target,
    start: int,
    stop: int,
    service: str,
    pod_of: PodOf,
    concurrency: int = 128,
    deadline: float | None = None,
) -> int:
    """Link uids ``start..stop-1`` permanently through `StatefulExecutor.set_linked_pod`.

    With ``deadline`` (a `time.perf_counter` value) it stops taking new uids
    then; return the end of the loaded range (``stop`` unless cut short).
    """
    ex = t.ex
    if start == 0 and stop > 0:  # warm up alone first (see compare.preload)
        await ex.set_linked_pod(NS, uid(0), service, pod_of(0), -1)
        start = 1
    queue = iter(range(start, stop))
    taken = [start]

    async def worker() -> None:
        for i in queue:
            taken[0] = max(taken[0], i + 1)
            await ex.set_linked_pod(NS, uid(i), service, pod_of(i), -1)
            if deadline is not None and time.perf_counter() > deadline:
                return

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    # Uids are handed out in order and every one handed out was linked, so
    # the loaded range has no gaps.
    return taken[0]


async def load_sql_bulk(
    t: SQLTarget, start: int, stop: int, service: str, pod_of: PodOf, chunk: int = 20_000
) -> None:
    """Insert permanent links ``start..stop-1`` straight into the backend's links table."""
    from sqlalchemy import MetaData, Table, insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from stateful.backends.sql import keys

    engine = create_async_engine(t.url)
    try:
        async with engine.connect() as conn:
            table = await conn.run_sync(
                lambda sync: Table(f"{t.prefix}links", MetaData(), autoload_with=sync)
            )
        known = {
            "link_key", "owner_key", "service_key", "namespace", "uid", "service", "pod",
            "expires_at", "updated_at",
        }
        missing = [
            c.name for c in table.columns
            if c.name not in known and not c.nullable and c.server_default is None
        ]
        if missing:
            raise RuntimeError(
                f"bulk loader does not know the links column(s) {missing}: update stateful.bench"
            )
        columns = [c.name for c in table.columns if c.name in known]
        now = t.now_ms()
        service_key = keys.service_key(NS, service)

        def row(i: int) -> dict[str, Any]:
            u = uid(i)
            values: dict[str, Any] = {
                "link_key": keys.link_key(NS, u, service),
                "owner_key": keys.owner_key(NS, u),
                "service_key": service_key,
                "namespace": NS,
                "uid": u,
                "service": service,
                "pod": pod_of(i),
                "expires_at": None,
                "updated_at": now,
            }
            return {name: values[name] for name in columns}

        statement = insert(table)
        for first in range(start, stop, chunk):
            rows = [row(i) for i in range(first, min(first + chunk, stop))]
            async with engine.begin() as conn:
                await conn.execute(statement, rows)
    finally:
        await engine.dispose()


async def load_redis_bulk(
    t: RedisTarget, start: int, stop: int, service: str, pod_of: PodOf, chunk: int = 2000
) -> None:
    """Run the backend's own ``set_linked_pod`` script per link, pipelined (standalone only).

    This reaches into the Redis backend's internals (its script object, key
    layout and argument order, as of the pods-come-and-go layout), so that 10M
    links load in minutes rather than hours; `verify` and the read-backs of
    the scale and pods runs catch a loader that fell out of step.
    """
    from stateful.backends.redis import backend as module

    backend: Any = t.ex.backend
    script = getattr(module, "_SET_LINKED_POD", None)
    layout = getattr(backend, "_keys", None)
    if script is None or layout is None or getattr(backend, "_cluster", True):
        raise RuntimeError("bulk Redis loading needs the standalone backend; use --api-load")
    index = layout.pod_index(NS, service)
    now = backend._now()
    member_service = service.encode()
    from redis.exceptions import NoScriptError

    for first in range(start, stop, chunk):
        for attempt in range(2):
            # The shared server's script cache may be flushed under us (other
            # tests do): load the script; if a chunk still met NOSCRIPT, send
            # it again as EVAL, which needs no cache.
            await t.client.script_load(script.source)
            pipe = t.client.pipeline(transaction=False)
            build = script.evalsha_args if attempt == 0 else script.eval_args
            for i in range(first, min(first + chunk, stop)):
                u = uid(i)
                args = (now, member_service, u.encode(), index, b"", str(pod_of(i)), "-1")
                pipe.execute_command(*build((layout.link_hash(NS, u),), args))
            replies = await pipe.execute(raise_on_error=False)
            errors = [reply for reply in replies if isinstance(reply, Exception)]
            if not any(isinstance(error, NoScriptError) for error in errors):
                break
        if errors:
            raise RuntimeError(f"bulk Redis load failed: {errors[0]!r}")


async def load(
    t: Target,
    start: int,
    stop: int,
    service: str,
    pod_of: PodOf,
    *,
    bulk: bool,
    deadline: float | None = None,
) -> tuple[str, int]:
    """Load links by the chosen path; return how ("API..." or "bulk insert") and the end."""
    if bulk and isinstance(t, SQLTarget):
        await load_sql_bulk(t, start, stop, service, pod_of)
        return "bulk insert", stop
    if bulk and isinstance(t, RedisTarget) and not t.cluster:
        # One call through the API first: its EVAL fallback puts the script in
        # Redis's cache, so the pipelined EVALSHAs find it.
        await t.ex.set_linked_pod(NS, uid(start), service, pod_of(start), -1)
        await load_redis_bulk(t, start + 1, stop, service, pod_of)
        return "bulk: backend's script, pipelined", stop
    end = await load_api(t, start, stop, service, pod_of, deadline=deadline)
    return "API, 128 tasks", end


async def verify(t: Target, stop: int, service: str, pod_of: PodOf, samples: int = 200) -> None:
    """Read ``samples`` random loaded uids back through the API; raise if one is wrong."""
    rng = random.Random(stop)
    for _ in range(samples):
        i = rng.randrange(stop)
        got = await t.ex.get_linked_pod(NS, uid(i), service)
        if got != pod_of(i):
            raise RuntimeError(f"loaded link {uid(i)} reads back {got}, expected {pod_of(i)}")
