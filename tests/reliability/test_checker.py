"""The linearizability checker: bad histories rejected, good ones accepted, racy stores caught.

Hand-written histories use small integer instants (only their order matters)
and the clock held at `NOW` unless an operation carries its own reading.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stateful import ManualClock, StatefulExecutor
from stateful.backends.memory import MemoryBackend
from stateful.records import LinkInfo
from stateful.testing.history import History, HistoryRecorder, Operation, Outcome
from stateful.testing.linearizability import check_history

NOW = 1_800_000_000_000
K = ("ns", "u", "svc")


def op(
    client: str,
    name: str,
    args: tuple[Any, ...],
    invoked: int,
    returned: int | None,
    result: Any = None,
    outcome: Outcome = "ok",
    now_ms: int | None = None,
    **kwargs: Any,
) -> Operation:
    return Operation(
        client=client,
        name=name,
        args=args,
        invoked_ns=invoked,
        returned_ns=returned,
        outcome=outcome,
        result=result,
        error=None if outcome == "ok" else "BackendUnavailable",
        kwargs=tuple(kwargs.items()),
        now_ms=now_ms,
    )


def check(*operations: Operation, now_ms: int = NOW) -> str:
    result = check_history(History(list(operations)), now_ms=now_ms, budget_s=5.0)
    assert result.verdict != "unknown", result
    return result.verdict


# -- rejected -------------------------------------------------------------------------------


def test_stale_read_after_a_completed_write_is_rejected() -> None:
    result = check_history(
        History(
            [
                op("a", "set_linked_pod", (*K, 3, -1), 0, 10, None),
                op("b", "get_linked_pod", K, 20, 30, None),
                op("c", "get_linked_pod", ("ns", "other", "svc"), 1, 40, None),
            ]
        ),
        now_ms=NOW,
    )
    assert result.verdict == "violation"
    first = result.report.splitlines()[0]
    # The first line names the key, the operation, the store's answer and the model's.
    assert first.startswith("key ('ns', 'u', 'svc'): cannot place b: get_linked_pod(")
    assert "-> None" in first and "the model answers 3" in first
    assert result.key == K
    # The minimal sub-history is the write and the stale read: the other key is not in it.
    assert "2 operations" in result.report.splitlines()[1]
    assert "other" not in result.report


def test_lost_update_is_rejected() -> None:
    # Two overlapping overwrites that both saw no link: one of them must see the other.
    assert (
        check(
            op("a", "set_linked_pod", (*K, 1, -1), 0, 30, None),
            op("b", "set_linked_pod", (*K, 2, -1), 5, 25, None),
        )
        == "violation"
    )
    # One of them seeing the other is fine, in either order.
    assert (
        check(
            op("a", "set_linked_pod", (*K, 1, -1), 0, 30, 2),
            op("b", "set_linked_pod", (*K, 2, -1), 5, 25, None),
        )
        == "ok"
    )


def test_two_if_absent_callers_both_creating_is_rejected() -> None:
    assert (
        check(
            op("a", "set_linked_pod_if_absent", (*K, 1, -1), 0, 30, 1),
            op("b", "set_linked_pod_if_absent", (*K, 2, -1), 5, 25, 2),
        )
        == "violation"
    )
    assert (
        check(
            op("a", "set_linked_pod_if_absent", (*K, 1, -1), 0, 30, 2),
            op("b", "set_linked_pod_if_absent", (*K, 2, -1), 5, 25, 2),
        )
        == "ok"
    )


def test_read_of_an_expired_link_is_rejected() -> None:
    made = op("a", "set_linked_pod", (*K, 4, 1), 0, 10, None, now_ms=NOW)
    # Live on its last millisecond, gone exactly at made + 1000 ms.
    last = op("b", "get_linked_pod", K, 20, 30, 4, now_ms=NOW + 999)
    assert check(made, last) == "ok"
    gone = op("b", "get_linked_pod", K, 20, 30, 4, now_ms=NOW + 1000)
    assert check(made, gone) == "violation"
    assert check(made, op("b", "get_linked_pod", K, 20, 30, None, now_ms=NOW + 1000)) == "ok"


def test_try_set_over_another_permanent_link_is_rejected() -> None:
    first = op("a", "set_linked_pod", (*K, 1, -1), 0, 10, None)
    assert check(first, op("b", "try_set_linked_pod", (*K, 2, -1), 20, 30, (True, 2))) == (
        "violation"
    )
    assert check(first, op("b", "try_set_linked_pod", (*K, 2, -1), 20, 30, (False, 1))) == "ok"
    # A temporary link never blocks.
    temporary = op("a", "set_linked_pod", (*K, 1, 60), 0, 10, None)
    assert check(temporary, op("b", "try_set_linked_pod", (*K, 2, -1), 20, 30, (True, 2))) == "ok"


def test_link_info_must_show_the_right_times() -> None:
    made = op("a", "set_linked_pod", (*K, 4, 30), 0, 10, None, now_ms=NOW)
    right = LinkInfo(*K, 4, NOW + 30_000, NOW)
    assert check(made, op("b", "get_link_info", K, 20, 30, right, now_ms=NOW + 5)) == "ok"
    wrong_expiry = LinkInfo(*K, 4, NOW + 30_005, NOW)
    assert check(made, op("b", "get_link_info", K, 20, 30, wrong_expiry)) == "violation"
    # A permanent link kept by set_linked_pod_if_absent is not "updated".
    kept = [
        op("a", "set_linked_pod", (*K, 4, -1), 0, 10, None, now_ms=NOW),
        op("b", "set_linked_pod_if_absent", (*K, 5, -1), 20, 30, 4, now_ms=NOW + 7),
    ]
    assert check(*kept, op("c", "get_link_info", K, 40, 50, LinkInfo(*K, 4, None, NOW))) == "ok"
    touched = LinkInfo(*K, 4, None, NOW + 7)
    assert check(*kept, op("c", "get_link_info", K, 40, 50, touched)) == "violation"


def test_failed_calls_did_not_happen() -> None:
    write = op("a", "set_linked_pod", (*K, 3, -1), 0, 10, None, outcome="error")
    assert check(write, op("b", "get_linked_pod", K, 20, 30, 3)) == "violation"


# -- calls of unknown outcome ---------------------------------------------------------------


def test_a_maybe_write_may_or_may_not_have_happened() -> None:
    cancelled = op("a", "set_linked_pod", (*K, 3, -1), 0, None, outcome="maybe")
    assert check(cancelled, op("b", "get_linked_pod", K, 20, 30, 3)) == "ok"
    assert check(cancelled, op("b", "get_linked_pod", K, 20, 30, None)) == "ok"
    # ... but not before it was invoked,
    early = op("b", "get_linked_pod", K, 0, 5, 3)
    late = op("a", "set_linked_pod", (*K, 3, -1), 10, None, outcome="maybe")
    assert check(early, late) == "violation"
    # ... nor twice, nor after the instant the test says everything had settled.
    settled = History([late, op("b", "get_linked_pod", K, 30, 40, 3)]).settled(20)
    assert check_history(settled, now_ms=NOW).ok
    closed = History([late, op("b", "remove_linked_pod", (*K, 0), 30, 40, True)]).settled(20)
    closed.append(op("c", "get_linked_pod", K, 50, 60, 3))
    assert check_history(closed, now_ms=NOW).verdict == "violation"


def test_placements_are_checked_per_link() -> None:
    # Concurrent placements of one uid must agree on the pod.
    assert (
        check(
            op("a", "place_linked_pod", (*K, -1), 0, 30, 1),
            op("b", "place_linked_pod", (*K, -1), 5, 25, 2),
        )
        == "violation"
    )
    # A placement that found no pod: there was no live link then.
    made = op("a", "set_linked_pod", (*K, 4, -1), 0, 10, None)
    assert check(made, op("b", "place_linked_pod", (*K, -1), 20, 30, None)) == "violation"
    assert check(made, op("b", "place_linked_pod", (*K, -1), 20, 30, 4)) == "ok"


# -- operations on several links ----------------------------------------------------------


def test_batch_reads_are_checked_per_link() -> None:
    a, b = ("ns", "a", "svc"), ("ns", "b", "svc")
    writes = [
        op("w", "set_linked_pod", (*a, 1, -1), 0, 10, None),
        op("w", "set_linked_pod", (*b, 2, -1), 11, 20, None),
    ]
    batch = ("ns", ["a", "b", "c"], "svc")
    assert check(*writes, op("r", "batch_get_linked_pod", batch, 30, 40, {1: ["a"], 2: ["b"]})) == (
        "ok"
    )
    stale = op("r", "batch_get_linked_pod", batch, 30, 40, {1: ["a"]})
    assert check(*writes, stale) == "violation"
    twice = op("r", "batch_get_linked_pod", batch, 30, 40, {1: ["a"], 2: ["b", "a"]})
    assert check(*writes, twice) == "violation"


def test_link_service_is_checked_per_link() -> None:
    writes = [
        op("w", "set_linked_pod", ("ns", "u", "s1", 1, -1), 0, 10, None),
        op("w", "set_linked_pod", ("ns", "u", "s2", 2, 30), 11, 20, None),
    ]
    # Only permanent links count.
    assert check(*writes, op("r", "get_link_service", ("ns", "u"), 30, 40, {"s1": 1})) == "ok"
    both = op("r", "get_link_service", ("ns", "u"), 30, 40, {"s1": 1, "s2": 2})
    assert check(*writes, both) == "violation"
    stray = op("r", "get_link_service", ("ns", "u"), 30, 40, {"s1": 1, "s9": 1})
    assert check(*writes, stray) == "violation"


def test_pod_links_keeps_its_weaker_promise() -> None:
    a, b = ("ns", "a", "svc"), ("ns", "b", "svc")
    linked = [
        op("w", "set_linked_pod", (*a, 1, -1), 0, 10, None),
        op("w", "set_linked_pod", (*b, 1, -1), 0, 10, None),
    ]
    walk = ("ns", "svc", 1)
    assert check(*linked, op("r", "pod_links", walk, 20, 90, ["a", "b"])) == "ok"
    # A uid linked there for the whole walk must come, and only once.
    assert check(*linked, op("r", "pod_links", walk, 20, 90, ["a"])) == "violation"
    assert check(*linked, op("r", "pod_links", walk, 20, 90, ["a", "b", "a"])) == "violation"
    # A uid that moved away during the walk may or may not come.
    moved = op("m", "set_linked_pod", (*b, 2, -1), 30, 40, 1)
    assert check(*linked, moved, op("r", "pod_links", walk, 20, 90, ["a"])) == "ok"
    assert check(*linked, moved, op("r", "pod_links", walk, 20, 90, ["a", "b"])) == "ok"
    # A uid never on the pod must not come.
    elsewhere = op("m", "set_linked_pod", (*b, 2, -1), 0, 10, None)
    assert check(linked[0], elsewhere, op("r", "pod_links", walk, 20, 90, ["a", "b"])) == (
        "violation"
    )


# -- budget and transport -------------------------------------------------------------------


def test_budget_gives_unknown_never_a_false_ok() -> None:
    # 30 fully concurrent reads fit in any of 2**30 orders, and a last read of a
    # pod nobody wrote fits in none: refuting it needs every order (or a wiser
    # search); the budget stops it first.
    ops = [op(f"c{i}", "get_linked_pod", K, i, 1000, None) for i in range(30)]
    ops.append(op("r", "get_linked_pod", K, 2000, 2001, 99))
    started = time.monotonic()
    result = check_history(History(ops), now_ms=NOW, budget_s=0.3)
    elapsed = time.monotonic() - started
    assert result.verdict == "unknown", result
    assert not result.ok
    assert "budget" in result.report
    assert elapsed < 2.0, elapsed


def test_history_survives_json() -> None:
    info = LinkInfo("ns", "u", "svc", 4, None, NOW)
    history = History(
        [
            op("a", "try_set_linked_pod", (*K, 1, -1), 0, 1, (True, 1)),
            op("a", "batch_get_linked_pod", ("ns", ["u", "v"], "svc"), 2, 3, {1: ["u"]}),
            op("a", "get_link_info", K, 4, 5, info, now_ms=NOW),
            op("a", "get_link_service", ("ns", "u"), 6, 7, {"svc": 1}),
            op("a", "pod_links", ("ns", "svc", 1), 8, 9, ["u"], page_size=2),
            op("a", "set_linked_pod", (*K, 1, -1), 10, None, outcome="maybe"),
        ]
    )
    again = History.from_json(history.to_json())
    assert again.operations == history.operations
    merged = History.merge([history, again])
    assert len(merged) == 12


# -- recorded against real executors --------------------------------------------------------


class RacyMemoryBackend(MemoryBackend):
    """A broken store: set_linked_pod_if_absent reads, yields, then writes (check-then-act)."""

    cancel_safe = False

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        current = await self.get_linked_pod(namespace, uid, service_name)
        await asyncio.sleep(0)  # another caller runs here: the race
        if current is not None:
            return current
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


async def _contend(backend: MemoryBackend, rounds: int) -> History:
    executor = StatefulExecutor(backend)
    history = History()
    clients = [HistoryRecorder(executor, client=f"c{c}", history=history) for c in range(8)]
    try:
        for r in range(rounds):
            key = ("ns", f"u{r}", "svc")
            await asyncio.gather(
                *(
                    rec.call("set_linked_pod_if_absent", *key, c, -1)
                    for c, rec in enumerate(clients)
                ),
                *(rec.call("get_linked_pod", *key) for rec in clients[:3]),
            )
    finally:
        await executor.aclose()
    return history


async def test_a_racy_backend_is_caught() -> None:
    history = await _contend(RacyMemoryBackend(clock=ManualClock(NOW)), rounds=5)
    result = check_history(history, now_ms=NOW)
    assert result.verdict == "violation", result
    assert "set_linked_pod_if_absent" in result.report.splitlines()[0]


async def test_the_real_memory_backend_passes_the_same_contention() -> None:
    history = await _contend(MemoryBackend(clock=ManualClock(NOW)), rounds=5)
    result = check_history(history, now_ms=NOW)
    assert result.ok, result
    assert result.operations == 5 * 11


def test_pod_states_are_checked_per_pod() -> None:
    ready = op("a", "set_service_state", ("ns", "svc", 1, "ready"), 0, 10, None, now_ms=NOW)
    beat = op(
        "a", "set_service_state", ("ns", "svc", 2, "ready"), 0, 10, None, now_ms=NOW, ttl_seconds=5
    )
    read = ("ns", "svc")
    both = op("b", "get_service_state", read, 20, 30, {1: "ready", 2: "ready"}, now_ms=NOW + 4999)
    assert check(ready, beat, both) == "ok"
    # The heartbeat's state is gone at exactly now + 5 s.
    late = op("b", "get_service_state", read, 20, 30, {1: "ready", 2: "ready"}, now_ms=NOW + 5000)
    assert check(ready, beat, late) == "violation"
    removed = op("c", "remove_service_state", ("ns", "svc", 1), 40, 50, True, now_ms=NOW)
    stale = op("b", "get_service_state", read, 60, 70, {1: "ready"}, now_ms=NOW)
    assert check(ready, removed, stale) == "violation"
    assert check(ready, removed, op("b", "get_service_state", read, 60, 70, {}, now_ms=NOW)) == "ok"
    stray = op("b", "get_service_state", read, 60, 70, {9: "ready"}, now_ms=NOW)
    assert check(ready, stray) == "violation"


def test_a_violation_on_one_key_wins_over_a_budget_run_out_on_another() -> None:
    hard = [op(f"c{i}", "get_linked_pod", K, i, 1000, None) for i in range(30)]
    hard.append(op("r", "get_linked_pod", K, 2000, 2001, 99))
    other = ("ns", "other", "svc")
    broken = [
        op("a", "set_linked_pod", (*other, 3, -1), 0, 10, None),
        op("b", "get_linked_pod", other, 20, 30, None),
    ]
    result = check_history(History(hard + broken), now_ms=NOW, budget_s=0.3)
    assert result.verdict == "violation" and result.key == other, result
