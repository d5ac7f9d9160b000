"""Cancellation storms on every server backend: hundreds of calls cancelled or timed out.

Waves of concurrent calls on a few links; a random share of them is cancelled
after a random delay (task cancel) or runs under a timeout of a few
milliseconds. After each wave the test waits until no call is in flight, so
a cancelled call took effect before that instant or never
(`History.settled`). Then:

* the whole history, cancelled calls counted as "maybe", is linearizable;
* no call got another call's reply: every link has pods of its own, so an
  answer meant for another call names a pod that link never had (the checker
  rejects it), and each answer has its operation's type;
* the pool is clean: sequential calls afterwards answer right (they are part
  of the checked history) and the executor closes in time.

Figures printed with ``-s``; ``STATEFUL_RELIABILITY=deep`` runs more waves.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import stateful
from stateful import ManualClock, StatefulExecutor
from stateful.backend import waiting_for_connection
from stateful.backends.memory import MemoryBackend
from stateful.records import LinkInfo
from stateful.testing.history import History, HistoryRecorder, Operation
from stateful.testing.linearizability import check_history
from tests.reliability.conftest import Target, scale
from tests.reliability.workload import Plan, prepare, random_call

NOW = 1_800_000_000_000
KEYS = 6
CALLS_PER_WAVE = 48
SETTLE_LIMIT_S = 10.0

#: The type each operation answers with, to spot a reply meant for another call.
ANSWER_TYPES: dict[str, tuple[type, ...]] = {
    "set_linked_pod": (int, type(None)),
    "try_set_linked_pod": (tuple,),
    "set_linked_pod_if_absent": (int,),
    "get_linked_pod": (int, type(None)),
    "get_linked_pod_if_persist": (int, type(None)),
    "remove_linked_pod": (bool,),
    "remove_linked_pod_with_id": (bool,),
    "get_link_info": (LinkInfo, type(None)),
    "batch_get_linked_pod": (dict,),
    "get_link_service": (dict,),
    "place_linked_pod": (int, type(None)),
    "pod_links": (list,),
    "count_pod_links": (dict,),
    "remove_pod_links": (int,),
    "set_service_state": (type(None),),
    "remove_service_state": (bool,),
    "get_service_state": (dict,),
}


def plans(namespace: str) -> list[Plan]:
    """One link per plan, each with a service and pods of its own (10k+1 .. 10k+3)."""
    return [
        Plan(namespace, (f"u{k}",), (f"s{k}",), (10 * k + 1, 10 * k + 2, 10 * k + 3))
        for k in range(KEYS)
    ]


def wrong_type(op: Operation) -> bool:
    """True if an answered call's result is not of its operation's type."""
    if op.outcome != "ok":
        return False
    expected = ANSWER_TYPES[op.name]
    if bool in expected:
        return not isinstance(op.result, bool)
    return isinstance(op.result, bool) or not isinstance(op.result, expected)


async def settle(executors: list[StatefulExecutor]) -> int:
    """Wait until no call of the executors runs in the background; return the instant (ns)."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    # The executor's set of background calls: if it is ever renamed, fail loudly
    # rather than settle too early (which would make the checker's bounds wrong).
    assert all(hasattr(ex, "_inflight") for ex in executors), "StatefulExecutor._inflight moved"
    # Shielded calls (backends not cancel_safe) finish in tasks the executor keeps.
    while any(getattr(ex, "_inflight", ()) for ex in executors):
        assert time.monotonic() < deadline, "calls still running long after their callers left"
        await asyncio.sleep(0.005)
    # A cancel-safe backend's last command may still be on the wire to the server.
    await asyncio.sleep(0.05)
    return time.monotonic_ns()


async def storm(target: Target, waves: int) -> tuple[History, dict[str, int]]:
    """Run the waves; return the settled history and the tallies."""
    clock = ManualClock(NOW)
    direct = stateful.connect(target.url, clock=clock, **target.options)
    hasty = stateful.connect(target.url, clock=clock, timeout=0.004, **target.options)
    hasty_pool = StatefulExecutor(hasty.backend)  # same backend and pool, no timeout
    executors = [direct, hasty]
    rng = random.Random(f"storm-{target.name}")
    key_plans = plans(f"storm-{uuid.uuid4().hex[:8]}")
    tallies = {"calls": 0, "cancelled": 0, "timed_out": 0, "pool_exhausted": 0}
    tallies["after_ms"] = 0
    settled_parts: list[History] = []
    try:
        setup = History()
        for plan in key_plans:
            await prepare(HistoryRecorder(direct, client="prep", history=setup), plan)
        settled_parts.append(setup)
        for wave in range(waves):
            history = History()
            tasks: list[asyncio.Future[Any]] = []
            for c in range(CALLS_PER_WAVE):
                executor = hasty if c % 3 == 0 else direct
                recorder = HistoryRecorder(executor, client=f"w{wave}c{c}", history=history)
                name, args, kwargs = random_call(rng, rng.choice(key_plans))
                tasks.append(asyncio.ensure_future(recorder.call(name, *args, **kwargs)))
            # Cancel about a third of the calls, each after its own random delay.
            loop = asyncio.get_running_loop()
            for task in tasks:
                if rng.random() < 0.35:
                    loop.call_later(rng.choice((0, 0.0002, 0.0005, 0.001, 0.003)), task.cancel)
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            for outcome in outcomes:
                tallies["calls"] += 1
                if isinstance(outcome, asyncio.CancelledError):
                    tallies["cancelled"] += 1
                elif isinstance(outcome, stateful.PoolExhausted):
                    tallies["pool_exhausted"] += 1
                elif isinstance(outcome, stateful.BackendUnavailable):
                    tallies["timed_out"] += 1
                elif isinstance(outcome, BaseException):
                    raise AssertionError(f"unexpected {outcome!r}") from outcome
            settled_parts.append(history.settled(await settle(executors)))
        # The pool is clean: the same executors answer sequential calls right.
        after = History()
        for k, plan in enumerate(key_plans):
            ns, uid, svc, pod = plan.namespace, plan.uids[0], plan.services[0], plan.pods[0]
            direct_rec = HistoryRecorder(direct, client=f"after{k}", history=after)
            await direct_rec.call("get_link_info", ns, uid, svc)
            await direct_rec.call("set_linked_pod", ns, uid, svc, pod, -1)
            assert await direct_rec.call("get_linked_pod", ns, uid, svc) == pod
            # The 4 ms executor's own pool, through an executor without a
            # timeout (a fresh connection alone may take longer than 4 ms).
            hasty_rec = HistoryRecorder(hasty_pool, client=f"after{k}h", history=after)
            started = time.monotonic()
            assert await hasty_rec.call("get_linked_pod", ns, uid, svc) == pod
            tallies["after_ms"] = max(
                tallies["after_ms"], round((time.monotonic() - started) * 1000)
            )
        settled_parts.append(after)
    finally:
        started = time.monotonic()
        for executor in (*executors, hasty_pool):  # the backend's close is safe twice
            await executor.aclose()
        tallies["aclose_ms"] = round((time.monotonic() - started) * 1000)
    return History.merge(settled_parts), tallies


async def test_cancellation_storm(any_server: Target, tmp_path: Path) -> None:
    target = any_server
    waves = scale(10, 60)
    history, tallies = await storm(target, waves)
    wrong = [op for op in history if wrong_type(op)]
    assert not wrong, f"answers of the wrong type (another call's reply?): {wrong[:3]}"
    result = check_history(history, now_ms=NOW, budget_s=30.0)
    if not result.ok:
        saved = tmp_path / f"storm-{target.name}.json"
        saved.write_text(history.to_json())
        raise AssertionError(f"{target.name} (history in {saved}):\n{result}")
    counts = history.counts()
    interrupted = tallies["cancelled"] + tallies["timed_out"]
    assert interrupted >= tallies["calls"] // 5, f"too few calls interrupted: {tallies}"
    assert counts["ok"] >= tallies["calls"] // 4, f"too few calls answered: {tallies}"
    print(
        f"\n[storm] {target.name}: {tallies['calls']} calls in {waves} waves, "
        f"{tallies['cancelled']} cancelled, {tallies['timed_out']} timed out, "
        f"{tallies['pool_exhausted']} pool-exhausted; {result.operations} operations checked "
        f"linearizable in {result.elapsed_s:.2f} s (ok {counts['ok']}, maybe {counts['maybe']}); "
        f"wrong answers 0; slowest call after {tallies['after_ms']} ms; "
        f"aclose {tallies['aclose_ms']} ms"
    )


class SlowPoolBackend(MemoryBackend):
    """A store whose connection pool makes callers wait ``pool_wait`` seconds.

    Not cancel-safe, so the executor shields its calls, as it does for SQL.
    """

    cancel_safe = False

    def __init__(self, pool_wait: float) -> None:
        super().__init__(clock=ManualClock(NOW))
        self.pool_wait = pool_wait

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        with waiting_for_connection():
            await asyncio.sleep(self.pool_wait)  # no connection free yet
        return await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)


async def test_pool_exhausted_means_nothing_was_sent() -> None:
    """A call that timed out waiting for a connection must not run later in the background."""
    backend = SlowPoolBackend(pool_wait=0.2)
    executor = StatefulExecutor(backend, timeout=0.05)
    with pytest.raises(stateful.PoolExhausted):
        await executor.set_linked_pod("ns", "u", "svc", 1, -1)
    await asyncio.sleep(0.3)  # long after the pool would have had a connection
    assert await backend.get_linked_pod("ns", "u", "svc") is None, "PoolExhausted, yet written"
    await executor.aclose()
