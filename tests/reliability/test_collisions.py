"""Identifiers built to collide never share storage, on every backend.

Every pair of distinct ``(namespace, uid, service)`` tuples below would
alias under some careless encoding or collation: case variants, trailing
and leading spaces (MariaDB's PAD SPACE collations), canonically equivalent
Unicode (NFC vs NFD, Å as U+00C5 / U+212B / A + ring), compatibility forms
(full-width, ß/ss), a prefix of another plus a separator (``("a", "b:c")``
against ``("a:b", "c")``), escape sequences (``%3A``, ``%7B``, ``\\:``), and
lengths at the limits (255, 1024, 4096 characters, and one character off).

All tuples are written at once, each with a pod of its own, then read back
through every read operation: each must see exactly its own value.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from stateful import ManualClock, StatefulExecutor
from stateful.validation import MAX_NAMESPACE, MAX_SERVICE_NAME, MAX_STATE, MAX_UID
from tests.reliability.conftest import scale

T = TypeVar("T")

NAMESPACES = [
    "a",
    "A",
    "a ",
    " a",
    "a:b",
    "\u00e9",  # é, NFC
    "e\u0301",  # é, NFD
    "%3A",
    ":",
    "{a}",
    "a" * MAX_NAMESPACE,
    "a" * (MAX_NAMESPACE - 1) + "b",
]
UIDS = [
    "c",
    "C",
    "c ",
    "b:c",
    "b",
    "\u00c5",  # Å
    "\u212b",  # Angstrom sign
    "A\u030a",  # A + combining ring
    "%7B",
    "{",
    "\\:",
    "\uff43",  # full-width c
    "\u00df",  # ß
    "ss",
    "x" * MAX_UID,
    "x" * (MAX_UID - 1) + "y",
]
SERVICES = [
    "s",
    "S",
    "s ",
    "b:s",
    "s\u200b",  # zero-width space
    "s" * MAX_SERVICE_NAME,
    "s" * (MAX_SERVICE_NAME - 1) + "t",
]
CONCURRENCY = 32
# Under CI, a subset that still holds one of every kind of collision (the full
# product, 1,344 links, under STATEFUL_RELIABILITY=deep).
if scale(0, 1) == 0:
    NAMESPACES = ["a", "A", "a ", "a:b", "\u00e9", "e\u0301", "a" * MAX_NAMESPACE]
    SERVICES = ["s", "S ", "b:s", "s" * MAX_SERVICE_NAME]


async def _in_batches(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``calls`` a few dozen at a time (bounded load on the shared servers)."""
    results: list[T] = []
    pending = list(calls)
    for start in range(0, len(pending), CONCURRENCY):
        results.extend(await asyncio.gather(*pending[start : start + CONCURRENCY]))
    return results


async def test_colliding_link_keys_stay_apart(store: tuple[StatefulExecutor, ManualClock]) -> None:
    executor, _ = store
    tuples = list(itertools.product(NAMESPACES, UIDS, SERVICES))
    assert len(set(tuples)) == len(tuples)
    pod_of = {key: pod for pod, key in enumerate(tuples)}
    # Lazily built coroutines: one batch in flight at a time.
    await _in_batches(executor.set_linked_pod(*key, pod, -1) for key, pod in pod_of.items())

    pairs = list(itertools.product(NAMESPACES, SERVICES))
    batches = await _in_batches(executor.batch_get_linked_pod(ns, UIDS, svc) for ns, svc in pairs)
    for (ns, svc), grouped in zip(pairs, batches, strict=True):
        assert grouped == {pod_of[(ns, uid, svc)]: [uid] for uid in UIDS}, (ns, svc)

    owners = list(itertools.product(NAMESPACES, UIDS))
    services = await _in_batches(executor.get_link_service(ns, uid) for ns, uid in owners)
    for (ns, uid), linked in zip(owners, services, strict=True):
        assert linked == {svc: pod_of[(ns, uid, svc)] for svc in SERVICES}, (ns, uid)

    counts = await _in_batches(executor.count_pod_links(ns, svc) for ns, svc in pairs)
    for (ns, svc), count in zip(pairs, counts, strict=True):
        assert count == {pod_of[(ns, uid, svc)]: 1 for uid in UIDS}, (ns, svc)

    async def walk(ns: str, svc: str, uid: str) -> list[str]:
        return [u async for u in executor.pod_links(ns, svc, pod_of[(ns, uid, svc)])]

    walks = await _in_batches(
        walk(ns, svc, UIDS[i % len(UIDS)]) for i, (ns, svc) in enumerate(pairs)
    )
    for i, walked in enumerate(walks):
        assert walked == [UIDS[i % len(UIDS)]], pairs[i]

    # Remove every other link: its neighbours, however alike, are untouched.
    removed = await _in_batches(
        executor.remove_linked_pod_with_id(*key, 0, pod)
        for key, pod in pod_of.items()
        if pod % 2 == 0
    )
    assert all(removed)
    answers = await _in_batches(executor.get_linked_pod(*key) for key in tuples)
    for key, answer in zip(tuples, answers, strict=True):
        assert answer == (None if pod_of[key] % 2 == 0 else pod_of[key]), key


async def test_colliding_state_keys_stay_apart(store: tuple[StatefulExecutor, ManualClock]) -> None:
    executor, _ = store
    pairs = list(itertools.product(NAMESPACES, SERVICES))
    states = ["ready", "Ready", "ready ", "r" * MAX_STATE, "r" * (MAX_STATE - 1) + "s"]
    pods = [0, 1]

    def state_of(i: int, pod: int) -> str:
        return f"{states[(i + pod) % len(states)]}"[: MAX_STATE - 8] + f"#{i}:{pod}"

    await _in_batches(
        executor.set_service_state(ns, svc, pod, state_of(i, pod))
        for i, (ns, svc) in enumerate(pairs)
        for pod in pods
    )
    await _in_batches(
        executor.set_workload_state(ns, svc, state_of(i, 9)) for i, (ns, svc) in enumerate(pairs)
    )
    found = await _in_batches(executor.get_service_state(ns, svc) for ns, svc in pairs)
    for i, pod_states in enumerate(found):
        assert pod_states == {pod: state_of(i, pod) for pod in pods}, pairs[i]
    workloads: list[dict[str, str]] = await _in_batches(
        executor.get_workload_state(ns, SERVICES) for ns in NAMESPACES
    )
    for ns, workload in zip(NAMESPACES, workloads, strict=True):
        expected = {svc: state_of(pairs.index((ns, svc)), 9) for svc in SERVICES}
        assert workload == expected, ns
