"""Fixed edge-case checks: run once per backend, each against the reference model.

They complement the random state machine with cases too big or too precise
to leave to chance: every collision pair linked to its own pod, identifiers
and states at the length limits, thousands of links on one pod (batches,
walks and drains past 1,000 and 2,000), every operation at an expiry
instant and 1 ms either side, concurrent creations of one link, cancelled
calls at every loop turn, and injected connection faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from stateful.backend import Backend
from stateful.clock import ManualClock
from stateful.errors import BackendUnavailable
from stateful.executor import StatefulExecutor
from stateful.testing.faults import Borrowed, FaultyBackend
from stateful.testing.model import ReferenceModel
from stateful.testing.pools import ESCAPES, SEPARATORS
from stateful.testing.rounds import Call, clone, yield_times
from stateful.validation import MAX_NAMESPACE, MAX_SERVICE_NAME, MAX_STATE, MAX_UID

Factory = Callable[[ManualClock], Awaitable[Backend]]
START_MS = 1_700_000_000_000


class EdgeFailure(AssertionError):
    """An edge case where the backend's answer differs from the model's (first line says how)."""


class Session:
    """One executor over a fresh backend, the model, and a shared ManualClock."""

    def __init__(self, executor: StatefulExecutor, clock: ManualClock) -> None:
        """Pair ``executor`` with a fresh model on ``clock``."""
        self.executor = executor
        self.clock = clock
        self.model = ReferenceModel(clock)

    async def both(self, call: Call) -> Any:
        """Make ``call`` on the store and the model and compare the answers."""
        expected = call.on_model(self.model) if call.operation != "pod_links" else None
        if call.operation == "pod_links":
            ns, svc, pod = call.args
            expected = sorted(self.model.pod_links(ns, svc, pod))
            walk = self.executor.pod_links(ns, svc, pod, **dict(call.kwargs))
            actual: Any = sorted([u async for u in walk])
        else:
            actual = await call.on_executor(self.executor)
        if actual != expected:
            raise EdgeFailure(
                f"{call} at t={self.clock.now_ms()}: backend returned {_brief(actual)}, "
                f"the model {_brief(expected)}"
            )
        return actual


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else f"{text[:300]}... ({len(text)} chars)"


async def _session(factory: Factory, use: Callable[[Session], Awaitable[None]]) -> None:
    clock = ManualClock(start_ms=START_MS)
    executor = StatefulExecutor(await factory(clock))
    try:
        await use(Session(executor, clock))
    finally:
        await executor.aclose()


def collision_pairs() -> list[tuple[str, str]]:
    """Every pair of distinct identifiers a careless store could map to one key."""
    pairs = [("a", "A"), ("Straße", "STRASSE"), ("u", "u "), ("u", "u\t"), ("u", "u\u00a0")]
    pairs += [("\u00e9", "e\u0301"), ("\u212b", "\u00c5"), ("ﬁ", "fi")]
    pairs += [(f"u{escaped}", f"u{plain}") for escaped, plain in ESCAPES]
    pairs += [("a", f"a{sep}") for sep in SEPARATORS]
    return pairs


async def check_collisions(factory: Factory) -> None:
    """Link each member of each collision pair, in each position, to its own pod; read all back."""

    async def use(s: Session) -> None:
        for left, right in collision_pairs():
            for position in range(3):
                keys: list[tuple[str, ...]] = []
                for pod, text in enumerate((left, right)):
                    parts = ["ns", "uid", "svc"]
                    parts[position] = text
                    keys.append(tuple(parts))
                    await s.both(Call("set_linked_pod", (*parts, pod, -1)))
                for done in keys:
                    await s.both(Call("get_link_info", done))
                    await s.both(Call("get_link_service", done[:2]))
                ns, _, svc = keys[0]
                await s.both(Call("count_pod_links", (ns, svc)))
        # Joins of namespace, uid and service: every split of one string, all distinct.
        for sep in SEPARATORS:
            a, b, c, d = "a", "b", "c", "d"
            for joined in (
                (a, f"{b}{sep}{c}", d),
                (f"{a}{sep}{b}", c, d),
                (a, b, f"{c}{sep}{d}"),
                (a, f"{b}{sep}{c}{sep}{d}", "s"),
            ):
                await s.both(Call("set_linked_pod", (*joined, len(joined[1]), -1)))
            for read in ((a, f"{b}{sep}{c}", d), (f"{a}{sep}{b}", c, d), (a, b, f"{c}{sep}{d}")):
                await s.both(Call("get_link_info", read))

    await _session(factory, use)


async def check_length_limits(factory: Factory) -> None:
    """Link and read identifiers and states at their limits, differing in the last character."""

    async def use(s: Session) -> None:
        ns = ["n" * (MAX_NAMESPACE - 1) + c for c in "ab"]
        uid = ["u" * (MAX_UID - 1) + c for c in "ab"]
        svc = ["s" * (MAX_SERVICE_NAME - 1) + c for c in "ab"]
        state = ["x" * (MAX_STATE - 1) + c for c in "ab"]
        for i in range(2):
            for j in range(2):
                await s.both(Call("set_linked_pod", (ns[i], uid[j], svc[i], 2 * i + j, -1)))
                await s.both(Call("set_service_state", (ns[i], svc[j], i, state[j])))
                await s.both(Call("set_workload_state", (ns[i], svc[j], state[1 - j])))
        for i in range(2):
            for j in range(2):
                await s.both(Call("get_link_info", (ns[i], uid[j], svc[i])))
                await s.both(Call("get_service_state", (ns[i], svc[j])))
            await s.both(Call("get_workload_state", (ns[i], svc)))
            await s.both(Call("get_link_service", (ns[i], uid[0])))
            await s.both(Call("batch_get_linked_pod", (ns[i], uid, svc[i])))
            await s.both(Call("pod_links", (ns[i], svc[i], 2 * i), (("page_size", 1),)))

    await _session(factory, use)


async def check_many_links(factory: Factory, count: int = 2500) -> None:
    """Thousands of links: batches, walks, counts and drains past 1,000 and 2,000."""

    async def use(s: Session) -> None:
        uids = [f"user-{i:05d}" for i in range(count)]
        for i, uid in enumerate(uids):
            pod = 0 if i % 5 else 1
            call = Call("set_linked_pod", ("n", uid, "s", pod, -1))
            call.on_model(s.model)
            await call.on_executor(s.executor)
        await s.both(Call("count_pod_links", ("n", "s")))
        await s.both(Call("batch_get_linked_pod", ("n", uids, "s")))
        await s.both(Call("batch_get_linked_pod", ("n", [*uids[::-1], "nobody"], "s")))
        await s.both(Call("pod_links", ("n", "s", 0)))
        await s.both(Call("pod_links", ("n", "s", 0), (("page_size", 999),)))
        await s.both(Call("remove_pod_links", ("n", "s", 0, 30)))
        await s.both(Call("count_pod_links", ("n", "s")))
        await s.both(Call("remove_pod_links", ("n", "s", 0, 0)))
        await s.both(Call("count_pod_links", ("n", "s")))
        await s.both(Call("pod_links", ("n", "s", 1), (("page_size", 7),)))

    await _session(factory, use)


async def check_expiry_instants(factory: Factory) -> None:
    """Every operation on a link and on a heartbeat at expiry - 1 ms, at it, and + 1 ms."""
    operations = (
        ("get_linked_pod", ()),
        ("get_linked_pod_if_persist", ()),
        ("get_link_info", ()),
        ("batch_get_linked_pod", ()),
        ("get_link_service", ()),
        ("pod_links", ()),
        ("count_pod_links", ()),
        ("set_linked_pod", (2, 5)),
        ("try_set_linked_pod", (2, -1)),
        ("set_linked_pod_if_absent", (2, 5)),
        ("remove_linked_pod", (5,)),
        ("remove_linked_pod_with_id", (5, 1)),
        ("remove_pod_links", (5,)),
        ("place_linked_pod", (5,)),
        ("get_service_state", ()),
        ("remove_service_state", ()),
        ("set_service_state", ()),
    )

    def call_for(operation: str, extra: tuple[Any, ...]) -> Call:
        key = ("n", "u", "s")
        if operation in ("batch_get_linked_pod",):
            return Call(operation, ("n", ["u", "v"], "s"))
        if operation == "get_link_service":
            return Call(operation, ("n", "u"))
        if operation == "pod_links":
            return Call(operation, ("n", "s", 1))
        if operation == "count_pod_links":
            return Call(operation, ("n", "s"))
        if operation == "remove_pod_links":
            return Call(operation, ("n", "s", 1, *extra))
        if operation == "get_service_state":
            return Call(operation, ("n", "s"))
        if operation == "remove_service_state":
            return Call(operation, ("n", "s", 1))
        if operation == "set_service_state":
            return Call(operation, ("n", "s", 2, "ready"), (("ttl_seconds", 2),))
        return Call(operation, (*key, *extra))

    async def use(s: Session) -> None:
        for operation, extra in operations:
            for offset in (-1, 0, 1):
                for persist in (1, 7):
                    await s.both(Call("set_linked_pod", ("n", "u", "s", 1, persist)))
                    await s.both(
                        Call(
                            "set_service_state", ("n", "s", 1, "ready"), (("ttl_seconds", persist),)
                        )
                    )
                    s.clock.advance_ms(persist * 1000 + offset)
                    await s.both(call_for(operation, extra))
                    await s.both(Call("get_link_info", ("n", "u", "s")))
                    await s.both(Call("get_service_state", ("n", "s")))
                    s.clock.advance_ms(20_000)

    await _session(factory, use)


async def check_placement_write(factory: Factory) -> None:
    """`Backend.place_linked_pod` with a chosen pod never moves a live link.

    The executor chooses the pod and the backend writes it; a user linked
    between the two must keep their pod. Random rounds reach that only by a
    lucky interleaving, so the backend's method is called here directly on
    every kind of link: none, permanent, temporary, expired at the instant.
    """

    async def use(s: Session) -> None:
        backend = s.executor.backend
        cases = (
            ("none", None),
            ("permanent", -1),
            ("temporary", 5),
            ("expired", 0),
        )
        for name, persist in cases:
            uid = f"place-{name}"
            if persist == 0:
                await s.both(Call("set_linked_pod", ("n", uid, "s", 1, 5)))
                s.clock.advance_ms(5000)
            elif persist is not None:
                await s.both(Call("set_linked_pod", ("n", uid, "s", 1, persist)))
            s.clock.advance_ms(1000)
            for ttl in (7, -1):
                expected = s.model.set_linked_pod_if_absent("n", uid, "s", 2, ttl)
                actual = await backend.place_linked_pod("n", uid, "s", ttl, 2)
                if actual != expected:
                    raise EdgeFailure(
                        f"backend.place_linked_pod('n', {uid!r}, 's', {ttl}, pod_id=2) on a "
                        f"{name} link at t={s.clock.now_ms()}: returned {actual!r}, the model "
                        f"{expected!r} (a live link must keep its pod)"
                    )
                await s.both(Call("get_link_info", ("n", uid, "s")))
        fresh = await backend.place_linked_pod("n", "place-nobody", "s", -1, None)
        if fresh is not None:
            raise EdgeFailure(
                f"backend.place_linked_pod('n', 'place-nobody', 's', -1, pod_id=None) on no "
                f"link: returned {fresh!r}, the model None (nothing to keep, nothing to link)"
            )
        await s.both(Call("get_link_info", ("n", "place-nobody", "s")))

    await _session(factory, use)


async def check_creation_race(factory: Factory, callers: int = 16) -> None:
    """Many executors create one link at once: all must agree on one pod.

    Three ways to create it: `set_linked_pod_if_absent`, `try_set_linked_pod`
    (exactly one caller wins) and `place_linked_pod`.
    """
    clock = ManualClock(start_ms=START_MS)
    backend = await factory(clock)
    executors = [StatefulExecutor(backend)]
    executors += [StatefulExecutor(Borrowed(backend)) for _ in range(callers - 1)]
    try:
        for round_ in range(5):
            uid = f"race-{round_}"

            async def one(i: int, uid: str = uid) -> int:
                await yield_times(i % 3)
                return await executors[i].set_linked_pod_if_absent("n", uid, "s", i, -1)

            answers = await asyncio.gather(*(one(i) for i in range(callers)))
            stored = await executors[0].get_linked_pod("n", uid, "s")
            if len(set(answers)) != 1 or answers[0] != stored:
                raise EdgeFailure(
                    f"set_linked_pod_if_absent('n', {uid!r}, 's', i, -1) from {callers} executors "
                    f"at once: backend returned {sorted(set(answers))} and holds {stored}, "
                    "the model one pod for all"
                )
            contested = f"try-{round_}"

            async def try_one(i: int, uid: str = contested) -> tuple[bool, int]:
                await yield_times(i % 3)
                return await executors[i].try_set_linked_pod("n", uid, "s", i, -1)

            tries = await asyncio.gather(*(try_one(i) for i in range(callers)))
            winners = [pod for won, pod in tries if won]
            stored = await executors[0].get_linked_pod("n", contested, "s")
            if len(winners) != 1 or any(pod != stored for _, pod in tries):
                raise EdgeFailure(
                    f"try_set_linked_pod('n', {contested!r}, 's', i, -1) from {callers} executors "
                    f"at once: backend returned {sorted(tries)} and holds {stored}, the model "
                    "one winner, every loser told the winner's pod"
                )
            await executors[0].set_service_state("n", "p", round_, "ready")
            placed = await asyncio.gather(
                *(executors[i].place_linked_pod("n", uid, "p", -1) for i in range(callers))
            )
            if len(set(placed)) != 1:
                raise EdgeFailure(
                    f"place_linked_pod('n', {uid!r}, 'p', -1) from {callers} executors at once: "
                    f"backend returned {sorted(set(placed), key=str)}, the model one pod for all"
                )
    finally:
        for executor in executors[1:]:
            await executor.aclose()
        await executors[0].aclose()


async def _view(s: Session, model: ReferenceModel) -> tuple[list[Any], list[Any]]:
    calls = [
        Call("get_link_info", ("n", "u", "s")),
        Call("get_service_state", ("n", "s")),
        Call("count_pod_links", ("n", "s")),
    ]
    return (
        [await c.on_executor(s.executor) for c in calls],
        [c.on_model(model) for c in calls],
    )


_WRITES = (
    Call("set_linked_pod", ("n", "u", "s", 2, -1)),
    Call("set_linked_pod", ("n", "u", "s", 3, 60)),
    Call("try_set_linked_pod", ("n", "u", "s", 3, -1)),
    Call("set_linked_pod_if_absent", ("n", "u", "s", 3, 60)),
    Call("remove_linked_pod", ("n", "u", "s", 0)),
    Call("remove_linked_pod", ("n", "u", "s", 60)),
    Call("remove_linked_pod_with_id", ("n", "u", "s", 0, 1)),
    Call("remove_pod_links", ("n", "s", 1, 0)),
    Call("place_linked_pod", ("n", "u", "s", -1)),
    Call("set_service_state", ("n", "s", 1, "draining")),
    Call("remove_service_state", ("n", "s", 1)),
)


async def check_cancellation(factory: Factory, turns: int = 8) -> None:
    """Cancel each write after 0..turns loop turns: the store is fully before or after it."""

    async def use(s: Session) -> None:
        for call in _WRITES:
            for turn in range(turns + 1):
                await s.both(Call("set_linked_pod", ("n", "u", "s", 1, -1)))
                await s.both(Call("set_service_state", ("n", "s", 1, "ready")))
                before, after = clone(s.model), clone(s.model)
                expected = call.on_model(after)
                task = asyncio.ensure_future(call.on_executor(s.executor))
                await yield_times(turn)
                task.cancel()
                try:
                    answer = await task
                except asyncio.CancelledError:
                    answer = task
                await _settle(s.executor)
                if answer is not task:
                    if answer != expected:
                        raise EdgeFailure(
                            f"{call}: backend returned {answer!r}, the model {expected!r}"
                        )
                    s.model = after
                    continue
                observed, was = await _view(s, before)
                _, will = await _view(s, after)
                if observed == was:
                    s.model = before
                elif observed == will:
                    s.model = after
                else:
                    raise EdgeFailure(
                        f"{call} cancelled after {turn} loop turns: the store shows {observed!r}, "
                        f"neither before {was!r} nor after {will!r}"
                    )

    await _session(factory, use)


async def _settle(executor: StatefulExecutor, limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    await yield_times(3)
    while loop.time() < deadline:
        pending = [t for t in getattr(executor, "_inflight", ()) if not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))


async def check_faults(factory: Factory) -> None:
    """Lose the connection before or after each write: BackendUnavailable, store before/after."""

    async def faulty(clock: ManualClock) -> Backend:
        return FaultyBackend(await factory(clock), seed=7)

    async def use(s: Session) -> None:
        backend = s.executor.backend
        assert isinstance(backend, FaultyBackend)
        for call in _WRITES:
            for when in ("before", "after"):
                await s.both(Call("set_linked_pod", ("n", "u", "s", 1, -1)))
                await s.both(Call("set_service_state", ("n", "s", 1, "ready")))
                before, after = clone(s.model), clone(s.model)
                call.on_model(after)
                backend.arm(when)
                try:
                    await call.on_executor(s.executor)
                except BackendUnavailable:
                    pass
                except Exception as error:
                    raise EdgeFailure(
                        f"{call} with the connection lost {when} the store: backend raised "
                        f"{type(error).__name__}: {error}, the model BackendUnavailable"
                    ) from error
                else:
                    raise EdgeFailure(
                        f"{call} with the connection lost {when} the store: backend returned "
                        "normally, the model BackendUnavailable"
                    )
                observed, was = await _view(s, before)
                _, will = await _view(s, after)
                expected_view = was if when == "before" else will
                if observed != expected_view and observed not in (was, will):
                    raise EdgeFailure(
                        f"{call} failed {when} the store: the store shows {observed!r}, "
                        f"neither before {was!r} nor after {will!r}"
                    )
                s.model = before if observed == was else after

    await _session(faulty, use)


async def check_injected_clock(factory: Factory) -> None:
    """Check the backend follows the clock it was given: live at +999 ms, gone at +1000 ms."""

    async def use(s: Session) -> None:
        await s.both(Call("set_linked_pod", ("n", "u", "s", 1, 1)))
        s.clock.advance_ms(999)
        await s.both(Call("get_linked_pod", ("n", "u", "s")))
        s.clock.advance_ms(1)
        await s.both(Call("get_linked_pod", ("n", "u", "s")))
        s.clock.advance_ms(315_360_000_000)
        await s.both(Call("set_linked_pod", ("n", "u", "s", 1, 315_360_000)))
        await s.both(Call("get_link_info", ("n", "u", "s")))

    await _session(factory, use)


async def check_histories(
    factory: Factory, seed: int = 0, *, clients: int = 4, calls: int = 12, rounds: int = 3
) -> None:
    """Concurrent clients on one store, their history checked by the linearizability checker.

    Each round, ``clients`` executors make ``calls`` random calls each on a
    few links and pods, interleaving at random loop turns, with the clock
    held still; between rounds the clock moves (some links and heartbeats
    expire). The whole history must be linearizable (`check_history`).
    """
    import random

    from stateful.testing.linearizability import History, HistoryRecorder, check_history

    chooser = random.Random(seed)
    clock = ManualClock(start_ms=START_MS)
    backend = await factory(clock)
    executors = [StatefulExecutor(backend)]
    executors += [StatefulExecutor(Borrowed(backend)) for _ in range(clients - 1)]
    history = History()
    recorders = [
        HistoryRecorder(ex, client=f"c{i}", history=history, clock=clock)
        for i, ex in enumerate(executors)
    ]
    uids, pods = ("u1", "u2", "u3"), (0, 1, 2)

    def random_call() -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        uid, pod = chooser.choice(uids), chooser.choice(pods)
        persist = chooser.choice((-1, -1, 1, 2))
        name = chooser.choice(
            (
                "set_linked_pod",
                "try_set_linked_pod",
                "set_linked_pod_if_absent",
                "remove_linked_pod",
                "remove_linked_pod_with_id",
                "get_linked_pod",
                "get_link_info",
                "batch_get_linked_pod",
                "pod_links",
                "remove_pod_links",
                "place_linked_pod",
                "set_service_state",
                "remove_service_state",
                "get_service_state",
            )
        )
        if name in ("set_linked_pod", "try_set_linked_pod", "set_linked_pod_if_absent"):
            return name, ("n", uid, "s", pod, persist), {}
        if name == "remove_linked_pod":
            return name, ("n", uid, "s", chooser.choice((0, 1))), {}
        if name == "remove_linked_pod_with_id":
            return name, ("n", uid, "s", chooser.choice((0, 1)), pod), {}
        if name in ("get_linked_pod", "get_link_info"):
            return name, ("n", uid, "s"), {}
        if name == "batch_get_linked_pod":
            return name, ("n", list(uids), "s"), {}
        if name == "pod_links":
            return name, ("n", "s", pod), {"page_size": chooser.choice((1, 2, 1000))}
        if name == "remove_pod_links":
            return name, ("n", "s", pod, chooser.choice((0, 1))), {}
        if name == "place_linked_pod":
            return name, ("n", uid, "s", persist), {}
        if name == "set_service_state":
            ttl = chooser.choice((None, 1, 2))
            return name, ("n", "s", pod, "ready"), {"ttl_seconds": ttl}
        if name == "remove_service_state":
            return name, ("n", "s", pod), {}
        return name, ("n", "s"), {}

    async def client(recorder: HistoryRecorder) -> None:
        for _ in range(calls):
            await yield_times(chooser.randrange(3))
            name, args, kwargs = random_call()
            await recorder.call(name, *args, **kwargs)

    try:
        for _ in range(rounds):
            await asyncio.gather(*(client(r) for r in recorders))
            clock.advance_ms(chooser.choice((500, 999, 1000, 1001, 2000)))
    finally:
        for executor in executors[::-1]:
            await executor.aclose()
    result = check_history(history, budget_s=20.0)
    if not result.ok:
        first, _, rest = (result.report or result.verdict).partition("\n")
        raise EdgeFailure(
            f"{first}\n(concurrent history of {len(history)} calls from {clients} clients, "
            f"seed {seed}: {result.verdict})\n{rest}"
        )
