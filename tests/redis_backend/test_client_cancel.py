"""Cancellation on the Redis call path, without the executor's shield.

redis-py on Python 3.11 loses some cancellations (``asyncio.wait_for`` in its
send, see `stateful.backends.redis.client`); the clients we build from URLs
must keep every one: a cancelled or timed-out call raises at once, leaves the
store fully before or after, and leaves no reply behind for the next call.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from stateful import BackendUnavailable, StatefulExecutor
from stateful.backends.redis import RedisBackend
from stateful.backends.redis.urls import client_from_url
from tests.redis_backend.scratch import delete_prefix, unique_prefix

NS, SVC = "ns", "svc"


def backend_class() -> type[RedisBackend]:
    """`RedisBackend`, made instantiable while operations outside these tests are pending.

    Only the link operations these tests call are used; any other operation
    the interface has but the Redis backend does not implement yet raises.
    """
    if not inspect.isabstract(RedisBackend):
        return RedisBackend

    async def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("not used by the client tests")

    names = {name: missing for name in RedisBackend.__abstractmethods__}
    return type("LinkOnlyRedisBackend", (RedisBackend,), names)


def make_backend(url: str, **options: Any) -> RedisBackend:
    """A backend owning a new client for ``url`` (as `from_url` builds it), fresh prefix."""
    client, closer = client_from_url(url, **options)
    return backend_class().owning(client, closer, prefix=unique_prefix())


@pytest.fixture
async def backend(any_redis_url: str) -> AsyncIterator[RedisBackend]:
    """A backend on the standalone, then the cluster server, whose keys are deleted afterwards."""
    made = make_backend(any_redis_url)
    try:
        yield made
    finally:
        await delete_prefix(made.client, made.keys.prefix)
        await made.aclose()


async def _cancel_after(coro: Any, steps: int) -> tuple[str, Any]:
    """Run ``coro`` for ``steps`` loop iterations, cancel it; say how it ended."""
    task = asyncio.ensure_future(coro)
    for _ in range(steps):
        await asyncio.sleep(0)
    if task.done():
        return "finished", task.result()
    task.cancel()
    try:
        result = await task
    except asyncio.CancelledError:
        return "cancelled", None
    return "ran on", result


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps cancellations on 3.12+")
async def test_plain_redis_py_loses_cancellations_on_311(redis_url: str) -> None:
    """The defect worked around: redis-py's own client lets a cancelled call return."""
    client = Redis.from_url(redis_url, socket_timeout=5)
    key = f"{unique_prefix()}probe"
    outcomes: list[str] = []
    try:
        for _ in range(20):
            for steps in range(30):
                command = client.execute_command("SET", key, "x")  # type: ignore[no-untyped-call]
                kind, _ = await _cancel_after(command, steps)
                outcomes.append(kind)
            if "ran on" in outcomes:
                break
        await client.delete(key)
    finally:
        await client.aclose()
    assert "ran on" in outcomes


async def test_backend_is_cancel_safe(backend: RedisBackend) -> None:
    """The executor awaits our clients directly (no shielded task)."""
    assert backend.cancel_safe
    assert StatefulExecutor(backend)._direct  # the point of cancel_safe


async def test_every_cancellation_is_kept_and_the_store_is_before_or_after(
    backend: RedisBackend,
) -> None:
    """Cancel writes and reads at every step: each raises, each write is all or nothing."""
    kinds: dict[str, int] = {}
    for steps in range(40):
        for attempt in range(3):
            uid = f"u{steps}-{attempt}"
            kind, result = await _cancel_after(backend.set_linked_pod(NS, uid, SVC, 7, -1), steps)
            kinds[kind] = kinds.get(kind, 0) + 1
            assert kind != "ran on", f"a cancelled write returned {result!r} after {steps} steps"
            pod = await backend.get_linked_pod(NS, uid, SVC)
            # The script writes the link and the uid's permanent-link index
            # together: both or neither.
            assert pod in (None, 7)
            assert await backend.get_link_service(NS, uid) == ({} if pod is None else {SVC: 7})
            kind, result = await _cancel_after(backend.get_linked_pod(NS, uid, SVC), steps)
            kinds[kind] = kinds.get(kind, 0) + 1
            assert kind != "ran on", f"a cancelled read returned {result!r} after {steps} steps"
    # Both outcomes happened, so cancellations landed mid-call, not only before or after.
    assert kinds.get("cancelled", 0) > 20
    assert kinds.get("finished", 0) > 0


async def test_no_call_reads_another_calls_reply(backend: RedisBackend) -> None:
    """Under random cancellations, every call that answers gets its own answer."""
    uids = [f"r{i}" for i in range(64)]
    for i, uid in enumerate(uids):
        await backend.set_linked_pod(NS, uid, SVC, i, -1)

    async def read(i: int) -> None:
        assert await backend.get_linked_pod(NS, uids[i], SVC) == i
        assert await backend.batch_get_linked_pod(NS, [uids[i], uids[(i + 1) % 64]], SVC) == {
            i: [uids[i]],
            (i + 1) % 64: [uids[(i + 1) % 64]],
        }

    cancelled = answered = 0
    deadline = time.monotonic() + 20
    for round_ in range(30):
        tasks = [asyncio.ensure_future(read(i)) for i in range(64)]
        for _ in range(round_ % 7):
            await asyncio.sleep(0)
        for task in tasks[round_ % 3 :: 3]:
            task.cancel()
        for task in tasks:
            try:
                await task
                answered += 1
            except asyncio.CancelledError:
                cancelled += 1
        assert time.monotonic() < deadline
    assert cancelled > 0 and answered > 0
    # And afterwards the pool serves every uid its own pod.
    for i in range(0, 64, 7):
        await read(i)


async def test_timed_out_calls_raise_at_once(backend: RedisBackend) -> None:
    """Executor timeouts on the direct path: within the timeout plus a small margin."""
    hasty_timeouts = [0.00005 * (1 + i % 8) for i in range(60)]
    outcomes: list[object] = []
    for i, limit in enumerate(hasty_timeouts):
        executor = StatefulExecutor(backend, timeout=limit)
        started = time.monotonic()
        try:
            outcomes.append(await executor.set_linked_pod(NS, "t", SVC, i, -1))
        except BackendUnavailable:
            outcomes.append("timed out")
        # Generous for a shared machine; a lost cancellation would not show
        # here on a healthy server, which the test above covers.
        assert time.monotonic() - started < limit + 0.25
    assert "timed out" in outcomes
    pod = await backend.get_linked_pod(NS, "t", SVC)
    assert await backend.get_link_service(NS, "t") == ({} if pod is None else {SVC: pod})
    assert await backend.get_linked_pod(NS, "t", SVC) == pod
