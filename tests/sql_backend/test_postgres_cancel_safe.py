"""PostgreSQL: the link read runs without the executor's shielded task.

`SQLBackend.cancel_safe_operations` names ``get_linked_pod`` on asyncpg: one
statement in autocommit, run by `PostgreSQLDialect.run_raw`, which drops the
connection when the call is interrupted. The executor therefore awaits it in
the caller's task. Writes stay shielded: the server can commit a write whose
connection was dropped after its caller moved on, so a timed-out write must
finish in its task, before `aclose` returns. These tests cancel calls of both
kinds, through an executor, at random instants, during row lock waits, under
timeouts and while the two-connection pool is exhausted, then check that:

* every pooled connection is open and outside any transaction, the server has
  no session of the pool that is not idle, and no row is locked;
* a call cancelled (or timed out) while it waited for a connection never runs
  later (`PoolExhausted` means nothing was sent);
* later calls answer right.

Each test runs on both ways a backend gets its engine (`POOLS`): built from
the URL, where the link statements run on the hot pool (`hot_pool`), and an
engine the application built, where everything runs on the engine's pool.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from stateful import BackendUnavailable, PoolExhausted, StatefulExecutor
from stateful.backends.sql import SQLBackend
from stateful.clock import ManualClock
from stateful.testing.rounds import settle
from tests.sql_backend.scratch import empty_backend
from tests.sql_backend.test_postgres_pool_hygiene import (
    POOLS,
    _assert_clean,
    _hold_row_lock,
    _pooled,
    make_backend,
)

NS, SVC = "cancelsafe", "svc"
SAFE = frozenset({"get_linked_pod"})


def _sibling(postgres_url: str, like: SQLBackend) -> SQLBackend:
    """Another backend like ``like`` (same pools, same store, same sessions name)."""
    return make_backend(postgres_url, "engine" if like.hot_pool is None else "hot")


@pytest.fixture(params=POOLS)
async def backend(postgres_url: str, request: pytest.FixtureRequest) -> AsyncIterator[SQLBackend]:
    """A PostgreSQL backend of two connections per pool over an empty store."""
    emptied = await empty_backend(postgres_url, ManualClock())
    await emptied.aclose()
    made = make_backend(postgres_url, request.param)
    yield made
    await made.aclose()


async def _answers_right(executor: StatefulExecutor, uids: list[str]) -> None:
    for n, uid in enumerate(uids):
        await executor.set_linked_pod(NS, uid, SVC, 100 + n, -1)
    for n, uid in enumerate(uids):
        assert await executor.get_linked_pod(NS, uid, SVC) == 100 + n


def test_the_link_read_is_declared_cancel_safe_and_writes_are_not(backend: SQLBackend) -> None:
    assert backend.cancel_safe_operations == SAFE
    assert not backend.cancel_safe


async def test_the_executor_runs_them_in_the_callers_task(
    backend: SQLBackend,
) -> None:
    seen: list[asyncio.Task[Any] | None] = []
    dialect: Any = backend.dialect
    # On the hot pool the read is a coroutine of the dialect's; else a function
    # that SQLAlchemy's greenlet runs.
    name = "get_linked_pod" if backend.hot_pool is None else "hot_get_linked_pod"
    original = getattr(dialect, name)

    def spy(*args: Any) -> Any:
        seen.append(asyncio.current_task())
        return original(*args)

    setattr(dialect, name, spy)
    executor = StatefulExecutor(backend)
    try:
        assert await executor.get_linked_pod(NS, "u", SVC) is None
        assert seen == [asyncio.current_task()]
    finally:
        delattr(dialect, name)
        await executor.aclose()


async def test_calls_cancelled_at_random_through_the_executor(
    backend: SQLBackend, postgres_url: str
) -> None:
    rng = random.Random(11)
    uids = [f"r{i}" for i in range(4)]
    executor = StatefulExecutor(backend)
    calls: list[Callable[[str], Awaitable[Any]]] = [
        lambda uid: executor.set_linked_pod(NS, uid, SVC, rng.randrange(8), rng.choice((-1, 60))),
        lambda uid: executor.get_linked_pod(NS, uid, SVC),
        # Shielded operations in between, on the same pool.
        lambda uid: executor.try_set_linked_pod(NS, uid, SVC, rng.randrange(8), 60),
        lambda uid: executor.remove_pod_links(NS, SVC, rng.randrange(8), 0),
    ]
    cancelled = 0
    loop = asyncio.get_running_loop()
    try:
        for _ in range(30):
            # Eight calls on two connections: most wait for one at first.
            tasks = [asyncio.ensure_future(rng.choice(calls)(rng.choice(uids))) for _ in range(8)]
            for task in tasks:
                delay = rng.choice((0, 0.0001, 0.0003, 0.0006, 0.001, 0.002, 0.004))
                loop.call_later(delay, task.cancel)
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, asyncio.CancelledError):
                    cancelled += 1
                elif isinstance(outcome, BaseException):
                    raise outcome
        assert cancelled > 30
        # Let the shielded calls that outlived their callers finish.
        for _ in range(100):
            if not executor._inflight:
                break
            await asyncio.sleep(0.02)
        await _assert_clean(backend, postgres_url)
        await _answers_right(executor, uids)
    finally:
        await executor.aclose()
    await _assert_clean(backend, postgres_url)


async def test_calls_under_tiny_timeouts(backend: SQLBackend, postgres_url: str) -> None:
    rng = random.Random(12)
    uids = [f"t{i}" for i in range(4)]
    outcomes: dict[str, int] = {}
    for timeout in (0.0003, 0.001, 0.003):
        executor = StatefulExecutor(_sibling(postgres_url, backend), timeout=timeout)
        try:
            for _ in range(10):
                calls = [
                    executor.set_linked_pod(NS, rng.choice(uids), SVC, rng.randrange(8), -1)
                    if rng.random() < 0.5
                    else executor.get_linked_pod(NS, rng.choice(uids), SVC)
                    for _ in range(8)
                ]
                for outcome in await asyncio.gather(*calls, return_exceptions=True):
                    kind = type(outcome).__name__
                    outcomes[kind] = outcomes.get(kind, 0) + 1
                    if isinstance(outcome, BaseException):
                        assert isinstance(outcome, PoolExhausted | BackendUnavailable), outcome
        finally:
            await executor.aclose()
    assert outcomes.get("PoolExhausted", 0) + outcomes.get("BackendUnavailable", 0) > 0
    await _assert_clean(backend, postgres_url)
    patient = StatefulExecutor(backend, timeout=5)
    try:
        await _answers_right(patient, uids)
    finally:
        await patient.aclose()


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_call_stopped_while_waiting_for_a_connection_never_runs(
    backend: SQLBackend, postgres_url: str, how: str
) -> None:
    executor = StatefulExecutor(backend, timeout=0.2 if how == "timeout" else None)
    await executor.set_linked_pod(NS, "held", SVC, 1, -1)
    holder = await _hold_row_lock(postgres_url, "held", NS)
    try:
        # Both pooled connections wait for the row lock (calls on the backend
        # itself, which no executor timeout bounds).
        blocked = [
            asyncio.ensure_future(backend.set_linked_pod(NS, "held", SVC, pod, -1))
            for pod in (2, 3)
        ]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in blocked)
        if how == "timeout":
            with pytest.raises(PoolExhausted):
                await executor.set_linked_pod(NS, "late", SVC, 9, -1)
        else:
            waiting = asyncio.ensure_future(executor.set_linked_pod(NS, "late", SVC, 9, -1))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    assert {await task for task in blocked} <= {1, 2, 3}
    await settle([executor])
    try:
        # Told PoolExhausted, the write was stopped before it was sent; a
        # cancelled caller's write is shielded and lands once a connection is free.
        late = None if how == "timeout" else 9
        assert await executor.get_linked_pod(NS, "late", SVC) == late
        assert await executor.get_linked_pod(NS, "held", SVC) in (2, 3)
        await _assert_clean(backend, postgres_url)
    finally:
        await executor.aclose()


async def test_a_write_cancelled_in_a_lock_wait(backend: SQLBackend, postgres_url: str) -> None:
    executor = StatefulExecutor(backend)
    await executor.set_linked_pod(NS, "locked", SVC, 5, -1)
    holder = await _hold_row_lock(postgres_url, "locked", NS)
    try:
        write = asyncio.ensure_future(executor.set_linked_pod(NS, "locked", SVC, 6, -1))
        read = asyncio.ensure_future(executor.get_linked_pod(NS, "locked", SVC))
        # A plain read never waits for a row lock.
        assert await read == 5
        await asyncio.sleep(0.3)
        assert not write.done()
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        for conn in await _pooled(backend):
            assert not conn.is_in_transaction()
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    await _assert_clean(backend, postgres_url)
    try:
        # The statement may still have run once the lock was free: before or after.
        assert await executor.get_linked_pod(NS, "locked", SVC) in (5, 6)
        await _answers_right(executor, ["locked", "other"])
    finally:
        await executor.aclose()


async def test_a_timed_out_write_lands_before_aclose_returns(
    backend: SQLBackend, postgres_url: str
) -> None:
    executor = StatefulExecutor(backend, timeout=0.2)
    await executor.set_linked_pod(NS, "slow", SVC, 5, -1)
    holder = await _hold_row_lock(postgres_url, "slow", NS)

    released = asyncio.Event()

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        await holder.execute("ROLLBACK")
        released.set()
        await holder.close()

    release: asyncio.Future[None] | None = None
    try:
        with pytest.raises(BackendUnavailable, match="timed out"):
            await executor.set_linked_pod(NS, "slow", SVC, 6, -1)
        release = asyncio.ensure_future(release_later())
        # The write runs on in its shielded task, waiting for the lock; aclose
        # waits for it. A write sent on a dropped connection would commit
        # whenever the server got to it, after aclose had returned. (The
        # holder's own close may still be under way then: the lock is what
        # the write waited for.)
        await executor.aclose()
        assert released.is_set(), "aclose returned while the write still waited for the lock"
    finally:
        if release is not None:
            await release
        else:
            await holder.execute("ROLLBACK")
            await holder.close()
    reader = _sibling(postgres_url, backend)
    try:
        assert await reader.get_linked_pod(NS, "slow", SVC) == 6
    finally:
        await reader.aclose()
