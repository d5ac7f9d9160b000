"""The conformance state machine: random call sequences against a backend and the model.

Every rule calls one operation on a `StatefulExecutor` over the backend under
test and on the `ReferenceModel`, with one shared `ManualClock`, and compares
the answers. Beyond single calls it

* draws identifiers from pools that hold every collision class in every
  example (`stateful.testing.pools`), up to the length limits;
* lands the clock on expiry instants of links and pod states and one
  millisecond either side, then calls every operation on what expires there;
* sends batches beyond 1,000 and 2,000 uids, with live uids at the chunk edges;
* re-checks answers kept from earlier calls after later writes (a backend
  that hands out its internal dict or list is caught);
* runs concurrent rounds on several executors over one store and checks
  that some order of the calls explains every answer and the state after;
* cancels calls and times them out at random points and checks the store
  is then fully before or fully after the call;
* races placement of one uid, and drains of a pod against moves of its users.

What a backend cannot do it declares in `Capabilities`; the rules needing
it are then left out (the kit's test base class reports them as skipped).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar, TypeAlias

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stateful.backend import Backend
from stateful.clock import ManualClock
from stateful.errors import ValidationError
from stateful.executor import StatefulExecutor
from stateful.records import LinkInfo
from stateful.testing.capabilities import Capabilities
from stateful.testing.faults import Borrowed
from stateful.testing.loop import cancel_leftover_tasks, run
from stateful.testing.model import ReferenceModel
from stateful.testing.pools import Pools, draw_pools
from stateful.testing.rounds import (
    Call,
    clone,
    linearizations,
    run_round,
    settle,
    yield_times,
)

#: Builds a backend over an EMPTY store that reads time from the given clock.
BackendFactory: TypeAlias = Callable[[ManualClock], Coroutine[Any, Any, Backend]]

Key: TypeAlias = tuple[str, str, str]  # namespace, uid, service

PODS = (0, 0, 1, 1, 2, 3, 2**31 - 1)
SET_PERSIST = (-1, -1, 1, 2, 3, 315_360_000)
REMOVE_PERSIST = (-1, 0, 1, 2, 315_360_000)
STATE_TTLS = (None, None, 1, 2, 3, 315_360_000)
PAGE_SIZES = (1, 2, 2, 3, 1000)
# Clock moves that are not aimed at an expiry: a few steps, and far jumps.
FAR_JUMPS_MS = (60_000, 3_600_000, 315_360_000_000)
# Large batches: sizes past one and two chunks of 1,000, live uids at the edges.
BATCH_SIZES = (1001, 2001, 2500)
BATCH_EDGES = (999, 1000, 1001, 1999, 2000, 2001, -1)
EXECUTORS = 3
KEPT_ANSWERS = 24

READS = (
    "get_linked_pod",
    "get_linked_pod_if_persist",
    "batch_get_linked_pod",
    "get_link_info",
    "get_link_service",
    "pod_links",
    "count_pod_links",
    "get_service_state",
    "get_workload_state",
)
WRITES = (
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "remove_pod_links",
    "place_linked_pod",
    "set_service_state",
    "remove_service_state",
    "set_workload_state",
)
ROUND_OPERATIONS = (
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "get_linked_pod",
    "get_link_info",
    "set_service_state",
    "remove_service_state",
    "get_service_state",
)
RACY_OPERATIONS = (
    "set_linked_pod_if_absent",
    "try_set_linked_pod",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
)
CANCEL_OPERATIONS = (
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "place_linked_pod",
    "remove_pod_links",
    "set_service_state",
    "remove_service_state",
)
_CANCELLED = object()


class Mismatch(AssertionError):
    """The backend's answer differs from the model's; the message's first line says how."""


def mismatch_behind(error: BaseException) -> Mismatch | None:
    """Return the `Mismatch` that ``error`` wraps or was raised while handling, if any.

    A failure that depends on timing cannot be replayed, and Hypothesis then
    reports one of its own ``Flaky`` errors with the mismatch inside.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Mismatch):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


class ConformanceMachine(RuleBasedStateMachine):
    """Compares a backend with the reference model; subclass via `conformance_machine`."""

    factory: BackendFactory
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: When a list, each finished example appends the set of features it reached.
    collect: ClassVar[list[set[str]] | None] = None

    def __init__(self) -> None:
        """Create the clock, the model and several executors over one backend."""
        super().__init__()
        self.clock = ManualClock(start_ms=1_700_000_000_000)
        self.model = ReferenceModel(self.clock)
        backend = run(type(self).factory(self.clock))
        self.executors = [StatefulExecutor(backend)]
        self.executors += [StatefulExecutor(Borrowed(backend)) for _ in range(EXECUTORS - 1)]
        self.executor = self.executors[0]
        self.pools = Pools()
        self.touched: list[Key] = []
        self.kept: list[tuple[Call, Any, Any, int]] = []
        self.writes = 0
        self.features: set[str] = set()
        self.rules_used: set[str] = set()
        self.steps = 0

    def teardown(self) -> None:
        """Close the backend and cancel whatever it left on the loop."""
        collected = type(self).collect
        if collected is not None:
            self.features.add(f"operations>={min(len(self.rules_used), 12) // 4 * 4}")
            self.features.add(f"steps>={self.steps // 10 * 10}")
            collected.append(set(self.features))
        try:
            # The borrowing executors first: the first one owns (and closes) the backend.
            for executor in self.executors[::-1]:
                run(executor.aclose())
        finally:
            cancel_leftover_tasks()

    @invariant()
    def count_steps(self) -> None:
        """Count the steps run (for the coverage statistics)."""
        self.steps += 1

    # -- drawing arguments ---------------------------------------------------------

    @initialize(data=st.data())
    def choose_identifiers(self, data: st.DataObject) -> None:
        """Draw this example's pools: every collision class, the length limits, a little random."""
        self.pools = draw_pools(data)

    @property
    def timed(self) -> bool:
        """True when the backend honours the injected clock (temporary links are checked)."""
        return type(self).capabilities.injected_clock

    def _link(self, data: st.DataObject) -> Key:
        # Mostly live or touched links: the interesting rules live on existing links.
        live: list[Key] = sorted(k for k in self.model.live_links() if k in self.touched)
        if live and bool(data.draw(st.booleans(), label="live link")):
            chosen: Key = data.draw(st.sampled_from(live), label="link")
            return chosen
        reuse = bool(self.touched) and data.draw(st.integers(0, 3), label="reuse") > 0
        if reuse:
            return data.draw(st.sampled_from(self.touched), label="link")
        link = (
            data.draw(st.sampled_from(self.pools.namespaces), label="namespace"),
            data.draw(st.sampled_from(self.pools.uids), label="uid"),
            data.draw(st.sampled_from(self.pools.services), label="service_name"),
        )
        if link not in self.touched:
            self.touched.append(link)
        return link

    def _persist(self, data: st.DataObject, choices: tuple[int, ...]) -> int:
        if not self.timed:
            return (
                -1
                if -1 in choices and 0 not in choices
                else data.draw(st.sampled_from((-1, 0)), label="persist_seconds")
            )
        return data.draw(st.sampled_from(choices), label="persist_seconds")

    def _states(self, data: st.DataObject) -> tuple[str, ...]:
        chosen = data.draw(
            st.lists(st.sampled_from(self.pools.states), min_size=1, max_size=3, unique=True),
            label="states",
        )
        return tuple(chosen)

    def _call_for(self, operation: str, data: st.DataObject, key: Key | None = None) -> Call:
        """Build a call of ``operation`` on ``key`` (drawn when None) with drawn arguments."""
        ns, uid, svc = key if key is not None else self._link(data)

        def pod() -> int:
            drawn: int = data.draw(st.sampled_from(PODS), label="pod_id")
            return drawn

        if operation in ("set_linked_pod", "try_set_linked_pod", "set_linked_pod_if_absent"):
            return Call(operation, (ns, uid, svc, pod(), self._persist(data, SET_PERSIST)))
        if operation in ("get_linked_pod", "get_linked_pod_if_persist", "get_link_info"):
            return Call(operation, (ns, uid, svc))
        if operation == "remove_linked_pod":
            return Call(operation, (ns, uid, svc, self._persist(data, REMOVE_PERSIST)))
        if operation == "remove_linked_pod_with_id":
            return Call(operation, (ns, uid, svc, self._persist(data, REMOVE_PERSIST), pod()))
        if operation == "batch_get_linked_pod":
            uids = data.draw(st.lists(st.sampled_from(self.pools.uids), max_size=12), label="uids")
            if uid not in uids:
                uids.append(uid)
            return Call(operation, (ns, uids, svc))
        if operation == "get_link_service":
            return Call(operation, (ns, uid))
        if operation == "pod_links":
            size = data.draw(st.sampled_from(PAGE_SIZES), label="page_size")
            return Call(operation, (ns, svc, pod()), (("page_size", size),))
        if operation == "count_pod_links":
            return Call(operation, (ns, svc))
        if operation == "remove_pod_links":
            return Call(operation, (ns, svc, pod(), self._persist(data, REMOVE_PERSIST)))
        if operation == "place_linked_pod":
            persist = self._persist(data, SET_PERSIST)
            return Call(operation, (ns, uid, svc, persist), (("states", self._states(data)),))
        if operation == "set_service_state":
            state = data.draw(st.sampled_from(self.pools.states), label="state")
            ttl = data.draw(st.sampled_from(STATE_TTLS), label="ttl") if self.timed else None
            return Call(operation, (ns, svc, pod(), state), (("ttl_seconds", ttl),))
        if operation == "remove_service_state":
            return Call(operation, (ns, svc, pod()))
        if operation == "get_service_state":
            return Call(operation, (ns, svc))
        if operation == "set_workload_state":
            state = data.draw(st.sampled_from(self.pools.states), label="state")
            return Call(operation, (ns, svc, state))
        if operation == "get_workload_state":
            names = data.draw(
                st.lists(st.sampled_from(self.pools.services), max_size=6), label="names"
            )
            return Call(operation, (ns, names))
        raise ValueError(operation)

    # -- calling and comparing -----------------------------------------------------

    def _normal(self, value: Any) -> Any:
        # Without an injected clock the store's times cannot match the model's.
        if not self.timed and isinstance(value, LinkInfo):
            return LinkInfo(
                value.namespace,
                value.uid,
                value.service_name,
                value.pod_id,
                value.expires_at_ms,
                0,
            )
        return value

    def _check(self, call: Call | str, actual: object, expected: object) -> None:
        actual, expected = self._normal(actual), self._normal(expected)
        if actual != expected:
            raise Mismatch(
                f"{call} at t={self.clock.now_ms()}: backend returned {actual!r}, "
                f"the model {expected!r}"
            )

    async def _execute(self, call: Call, executor: StatefulExecutor | None = None) -> Any:
        executor = executor or self.executor
        if call.operation == "pod_links":
            ns, svc, pod = call.args
            walk = executor.pod_links(ns, svc, pod, **dict(call.kwargs))
            return sorted([uid async for uid in walk])
        return await call.on_executor(executor)

    def _expect(self, call: Call, model: ReferenceModel | None = None) -> Any:
        model = model or self.model
        if call.operation == "pod_links":
            return sorted(model.pod_links(*call.args))
        return call.on_model(model)

    def _both(self, call: Call) -> Any:
        self.rules_used.add(call.operation)
        expected = self._expect(call)
        actual = run(self._execute(call))
        self._check(call, actual, expected)
        self._keep(call, actual, expected)
        self._note_limits(call)
        if call.operation in WRITES:
            self.writes += 1
            self._verify_after(call)
        return actual

    def _verify_after(self, call: Call) -> None:
        """Read back what a write touched, so a wrong effect shows at once."""
        key = self._key_of(call)
        if call.operation in ("set_service_state", "remove_service_state"):
            reads = [Call("get_service_state", (key[0], key[2]))]
        elif call.operation == "set_workload_state":
            reads = [Call("get_workload_state", (key[0], [key[2]]))]
        elif call.operation == "remove_pod_links":
            reads = [Call("count_pod_links", (key[0], key[2]))]
        else:
            reads = [Call("get_link_info", key)]
        for read in reads:
            self._check(
                f"{read} (read back after {call})", run(self._execute(read)), self._expect(read)
            )

    def _keep(self, call: Call, actual: Any, expected: Any) -> None:
        # A caller may hold an answer for as long as it likes: later writes must not change it.
        if isinstance(actual, (dict, list)) and actual:
            self.kept.append((call, actual, copy.deepcopy(expected), self.writes))
            del self.kept[:-KEPT_ANSWERS]

    def _note_limits(self, call: Call) -> None:
        for value in call.args:
            if isinstance(value, str) and self.pools.classes.get(value) is not None:
                kind = self.pools.classes[value]
                self.features.add(f"class:{kind}")
                if len(value) >= 255:
                    self.features.add("at_length_limit")

    # -- one rule per operation ----------------------------------------------------

    @rule(data=st.data())
    def set_service_state(self, data: st.DataObject) -> None:
        """Set a pod state, permanent or as a heartbeat with a TTL."""
        call = self._call_for("set_service_state", data)
        if dict(call.kwargs).get("ttl_seconds") is not None:
            self.features.add("state_ttl")
        self._both(call)

    @rule(data=st.data())
    def remove_service_state(self, data: st.DataObject) -> None:
        """Delete a pod's state."""
        self._both(self._call_for("remove_service_state", data))

    @rule(data=st.data())
    def set_workload_state(self, data: st.DataObject) -> None:
        """Set a workload state."""
        self._both(self._call_for("set_workload_state", data))

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """Call one of the reads (one rule for all, so rounds and writes come often enough)."""
        operation = data.draw(st.sampled_from(READS), label="read")
        if operation == "pod_links":
            self.pod_links(data)
        else:
            self._both(self._call_for(operation, data))

    @rule(data=st.data())
    def set_linked_pod(self, data: st.DataObject) -> None:
        """Link unconditionally."""
        self._both(self._call_for("set_linked_pod", data))

    @rule(data=st.data())
    def try_set_linked_pod(self, data: st.DataObject) -> None:
        """Link unless permanently linked elsewhere."""
        self._both(self._call_for("try_set_linked_pod", data))

    @rule(data=st.data())
    def set_linked_pod_if_absent(self, data: st.DataObject) -> None:
        """Link if absent, else keep and refresh."""
        self._both(self._call_for("set_linked_pod_if_absent", data))

    @rule(data=st.data())
    def remove_linked_pod(self, data: st.DataObject) -> None:
        """Remove a link or keep it for a persist window."""
        self._both(self._call_for("remove_linked_pod", data))

    @rule(data=st.data())
    def remove_linked_pod_with_id(self, data: st.DataObject) -> None:
        """Remove a link only if it points at the pod."""
        self._both(self._call_for("remove_linked_pod_with_id", data))

    @rule(data=st.data())
    def pod_links(self, data: st.DataObject) -> None:
        """Walk a pod's uids in small pages (compared as a set; duplicates are caught).

        Mostly a pod that has links, often after linking a few more uids to
        it, so that pages end and start between uids.
        """
        call = self._call_for("pod_links", data)
        ns, svc, pod = call.args
        for uid in data.draw(
            st.lists(st.sampled_from(self.pools.uids), min_size=1, max_size=4, unique=True),
            label="add",
        ):
            self._both(Call("set_linked_pod", (ns, uid, svc, pod, -1)))
        counts = self.model.count_pod_links(ns, svc)
        if counts and data.draw(st.integers(0, 3), label="busy pod") > 0:
            pod = data.draw(st.sampled_from(sorted(counts)), label="pod_id")
            call = Call("pod_links", (ns, svc, pod), call.kwargs)
        self._both(call)

    @rule(data=st.data())
    def remove_pod_links(self, data: st.DataObject) -> None:
        """Drain a pod."""
        self._both(self._call_for("remove_pod_links", data))

    @rule(data=st.data())
    def place_linked_pod(self, data: st.DataObject) -> None:
        """Place a uid on the least-loaded pod in the given states, or keep its link."""
        self._both(self._call_for("place_linked_pod", data))

    # -- expiry instants -----------------------------------------------------------

    @precondition(lambda self: self.timed)
    @rule(data=st.data())
    def advance_clock(self, data: st.DataObject) -> None:
        """Move time: onto a pending expiry or 1 ms either side, a little, or far."""
        now = self.clock.now_ms()
        pending = self.model.pending_expiries()
        kinds = ["near", "far"] + (["expiry"] * 4 if pending else [])
        kind = data.draw(st.sampled_from(kinds), label="move")
        if kind == "expiry":
            instant = data.draw(st.sampled_from(pending), label="expiry")
            offset = data.draw(st.sampled_from((0, -1, 1)), label="offset")
            if instant + offset >= now:
                self.clock.advance_ms(instant + offset - now)
                self._probe(data, instant, offset, every=False)
            return
        elif kind == "near":
            delta = data.draw(st.integers(0, 2500), label="delta_ms")
        else:
            delta = data.draw(st.sampled_from(FAR_JUMPS_MS), label="delta_ms")
        self.clock.advance_ms(delta)

    @precondition(lambda self: self.timed)
    @rule(data=st.data())
    def at_expiry(self, data: st.DataObject) -> None:
        """Land 1 ms before, on, or 1 ms after an expiry instant and call every operation there.

        When nothing is pending, a temporary link or a heartbeat is made first,
        so that most examples reach an expiry instant.
        """
        if not self.model.pending_expiries():
            key = self._link(data)
            if data.draw(st.booleans(), label="heartbeat"):
                pod = data.draw(st.sampled_from(PODS), label="pod_id")
                self._both(
                    Call(
                        "set_service_state",
                        (key[0], key[2], pod, self.pools.states[0]),
                        (("ttl_seconds", 1),),
                    )
                )
            else:
                self._both(Call("set_linked_pod", (*key, 0, 1)))
        instant = data.draw(st.sampled_from(self.model.pending_expiries()), label="expiry")
        offset = data.draw(st.sampled_from((-1, 0, 1)), label="offset")
        self.clock.advance_ms(max(0, instant + offset - self.clock.now_ms()))
        if self.clock.now_ms() != instant + offset:
            return
        self._probe(data, instant, offset, every=True)

    def _probe(self, data: st.DataObject, instant: int, offset: int, *, every: bool) -> None:
        """Call operations on a link or pod state expiring at ``instant`` (now is instant+offset).

        ``every``: all reads in a random order, then one write; else one operation.
        """
        links = [k for k, link in self.model.links.items() if link.expires_at == instant]
        states = [k for k, st_ in self.model.pod_states.items() if st_.expires_at == instant]
        if not links and not states:
            return
        if links:
            ns, uid, svc = data.draw(st.sampled_from(links), label="expiring link")
            pod = self.model.links[(ns, uid, svc)].pod
            what = "link"
        else:
            ns, svc, pod = data.draw(st.sampled_from(states), label="expiring state")
            uid = data.draw(st.sampled_from(self.pools.uids), label="uid")
            what = "state"
        key = (ns, uid, svc)
        reads = data.draw(st.permutations(READS), label="reads") if every else ()
        for operation in reads:
            call = self._call_for(operation, data, key)
            if operation == "pod_links":
                call = Call(operation, (ns, svc, pod), call.kwargs)
            self._both(call)
        # Mostly a read first: a store that forgets to drop what just expired shows there.
        choices: tuple[str, ...]
        if every or data.draw(st.integers(0, 3), label="write first") == 0:
            choices = WRITES
        else:
            choices = READS
        operation = data.draw(st.sampled_from(choices), label="operation at expiry")
        call = self._call_for(operation, data, key)
        if operation in ("remove_linked_pod_with_id", "remove_pod_links", "remove_service_state"):
            args = list(call.args)
            args[-1 if operation == "remove_linked_pod_with_id" else 2] = pod
            call = Call(operation, tuple(args), call.kwargs)
        elif operation == "pod_links":
            call = Call(operation, (ns, svc, pod), call.kwargs)
        self._both(call)
        self.features.add(f"{what}_expiry{offset:+d}")
        self.features.add(f"at_expiry:{operation}")
        event(f"at expiry {offset:+d} ms: {what}, {operation}")

    @precondition(lambda self: self.timed)
    @rule(data=st.data())
    def expiry_sweep(self, data: st.DataObject) -> None:
        """Call each operation first thing at an expiry instant (or 1 ms either side).

        For every operation in turn: make a link (or a heartbeat) that expires
        in 1 s, land the clock on its instant plus an offset, and call the
        operation on it before anything else touches the store.
        """
        offsets = data.draw(
            st.lists(st.sampled_from((0, 1, -1)), min_size=1, max_size=3, unique=True),
            label="offsets",
        )
        for index, operation in enumerate(data.draw(st.permutations(READS + WRITES), label="ops")):
            offset = offsets[index % len(offsets)]
            ns, uid, svc = self._link(data)
            pod = data.draw(st.sampled_from(PODS), label="pod_id")
            if operation in ("get_service_state", "set_service_state", "remove_service_state"):
                state = data.draw(st.sampled_from(self.pools.states), label="state")
                self._both(Call("set_service_state", (ns, svc, pod, state), (("ttl_seconds", 1),)))
                what = "state"
            else:
                self._both(Call("set_linked_pod", (ns, uid, svc, pod, 1)))
                what = "link"
            self.clock.advance_ms(1000 + offset)
            call = self._call_for(operation, data, (ns, uid, svc))
            if operation in (
                "remove_linked_pod_with_id",
                "remove_pod_links",
                "remove_service_state",
            ):
                args = list(call.args)
                args[-1 if operation == "remove_linked_pod_with_id" else 2] = pod
                call = Call(operation, tuple(args), call.kwargs)
            elif operation == "pod_links":
                call = Call(operation, (ns, svc, pod), call.kwargs)
            self._both(call)
            self.features.add(f"{what}_expiry{offset:+d}")
            self.features.add(f"first_at_expiry:{operation}")
        self.features.add("expiry_sweep")

    @rule(data=st.data(), position=st.integers(0, 2))
    def collision_pair(self, data: st.DataObject, position: int) -> None:
        """Link both members of a colliding pair to different pods and read both back.

        ``position`` says where the pair goes: namespace, uid or service.
        """
        pools = (self.pools.namespaces, self.pools.uids, self.pools.services)[position]
        kinds = sorted({self.pools.classes[i] for i in pools if i in self.pools.classes})
        kind = data.draw(st.sampled_from(kinds), label="class")
        members = [i for i in pools if self.pools.classes.get(i) == kind]
        ns, uid, svc = self._link(data)
        keys: list[Key] = []
        for pod, member in enumerate(members):
            parts = [ns, uid, svc]
            parts[position] = member
            keys.append((parts[0], parts[1], parts[2]))
            self._both(Call("set_linked_pod", (*keys[-1], pod, -1)))
        for done in keys:
            self._both(Call("get_link_info", done))
        self.features.add(f"pair_linked:{kind}")

    @rule(data=st.data())
    def refresh_kept_link(self, data: st.DataObject) -> None:
        """Make a permanent or temporary link, let time pass, then keep, refresh or re-set it."""
        ns, uid, svc = self._link(data)
        pod = data.draw(st.sampled_from(PODS), label="pod_id")
        persist = self._persist(data, (-1, 2, 5))
        self._both(Call("set_linked_pod", (ns, uid, svc, pod, persist)))
        if self.timed:
            self.clock.advance_ms(data.draw(st.integers(1, 1500), label="delta_ms"))
        operation = data.draw(
            st.sampled_from(
                (
                    "set_linked_pod_if_absent",
                    "place_linked_pod",
                    "try_set_linked_pod",
                    "remove_linked_pod",
                )
            ),
            label="operation",
        )
        call = self._call_for(operation, data, (ns, uid, svc))
        if operation == "try_set_linked_pod":
            call = Call(operation, (ns, uid, svc, pod, call.args[4]))
        self._both(call)

    # -- large batches, limits, re-checks ------------------------------------------

    @precondition(lambda self: self.capabilities.missing("large_batch") is None)
    @rule(data=st.data())
    def large_batch(self, data: st.DataObject) -> None:
        """Read a batch beyond 1,000 / 2,000 uids with live uids at the chunk edges."""
        ns, uid, svc = self._link(data)
        if self.model.get_linked_pod(ns, uid, svc) is None:
            self._both(Call("set_linked_pod", (ns, uid, svc, 0, -1)))
        live = [u for u in self.pools.uids if self.model.get_linked_pod(ns, u, svc) is not None]
        size = data.draw(st.sampled_from(BATCH_SIZES), label="batch size")
        uids = [f"bulk-{i}" for i in range(size)]
        # The live uids sit at chunk edges, each once, so a lost or shifted chunk shows.
        edges = [p for p in BATCH_EDGES if -size <= p < size]
        for position, member in zip(
            data.draw(st.permutations(edges), label="edges"), live, strict=False
        ):
            uids[position] = member
        self._both(Call("batch_get_linked_pod", (ns, uids, svc)))
        self.features.add("batch>1000")
        if size > 2000:
            self.features.add("batch>2000")
        event(f"batch of {size} uids")

    @rule(data=st.data(), bad=st.sampled_from(("pod", "persist", "uid")))
    def rejected_call_writes_nothing(self, data: st.DataObject, bad: str) -> None:
        """Send a bad argument: it must raise ValidationError and write nothing."""
        ns, uid, svc = self._link(data)
        pod, persist = 0, -1
        if bad == "pod":
            pod = data.draw(st.sampled_from((-1, 2**31, True)), label="bad pod")
        elif bad == "persist":
            persist = data.draw(st.sampled_from((0, -2, 315_360_001)), label="bad persist")
        else:
            uid = data.draw(st.sampled_from(("", "u" * 1025, "a\x00b")), label="bad uid")
        try:
            run(self.executor.set_linked_pod(ns, uid, svc, pod, persist))
        except ValidationError:
            pass
        else:
            raise Mismatch(f"set_linked_pod with a bad {bad} was accepted")

    @rule()
    def answers_still_hold(self) -> None:
        """Answers handed out earlier must not have changed under later writes."""
        for call, actual, expected, writes in self.kept:
            if self.writes > writes:
                self.features.add("recheck_after_write")
            self._check(f"{call} (answer re-read after later writes)", actual, expected)

    @rule()
    def whole_state_matches(self) -> None:
        """Compare everything a client can see in every namespace."""
        run(self._compare_whole_state())
        self.answers_still_hold()

    @staticmethod
    def _padded(members: list[str], size: int) -> list[str]:
        """Put ``members`` at the chunk edges of a batch of ``size`` (> 2,000) uids."""
        uids = [f"bulk-{i}" for i in range(size)]
        edges = (1000, 2000, 999, 1999)
        for index, member in enumerate(members):
            uids[edges[index] if index < len(edges) else size - index] = member
        return uids

    async def _compare_whole_state(self) -> None:
        calls: list[Call] = []
        # One service per comparison reads its uids inside a batch of 2,001+ (chunk edges).
        big = self.touched[self.steps % len(self.touched)] if self.touched else None
        for ns in self.pools.namespaces:
            for svc in self.pools.services:
                uids = self.pools.uids
                if (
                    big is not None
                    and (ns, svc) == (big[0], big[2])
                    and self.capabilities.missing("large_batch") is None
                ):
                    uids = self._padded(self.pools.uids, 2001 + self.steps % 500)
                    self.features.update(("batch>1000", "batch>2000"))
                calls.append(Call("batch_get_linked_pod", (ns, uids, svc)))
                calls.append(Call("get_service_state", (ns, svc)))
                calls.append(Call("count_pod_links", (ns, svc)))
            calls.append(Call("get_workload_state", (ns, self.pools.services)))
        for ns, uid, svc in self.touched:
            calls.append(Call("get_link_info", (ns, uid, svc)))
            calls.append(Call("get_link_service", (ns, uid)))
        for call in calls:
            self._check(call, await self._execute(call), self._expect(call))

    # -- concurrency and cancellation ----------------------------------------------

    def _view(self, keys: Iterable[Key]) -> list[Call]:
        calls: list[Call] = []
        for ns, uid, svc in dict.fromkeys(keys):
            calls += [
                Call("get_link_info", (ns, uid, svc)),
                Call("get_link_service", (ns, uid)),
                Call("get_service_state", (ns, svc)),
                Call("count_pod_links", (ns, svc)),
                Call("get_workload_state", (ns, [svc])),
            ]
        return calls

    def _settle_keys(self, keys: list[Key]) -> None:
        """Remove the links and pod states a round touched, on the store and the model.

        Which of the allowed outcomes a real store shows varies from run to
        run; the next steps must not depend on it, or Hypothesis could not
        replay an example. Every removal is still checked against the model.
        """
        services = dict.fromkeys((ns, svc) for ns, _, svc in keys)
        for ns, uid, svc in dict.fromkeys(keys):
            self._both(Call("remove_linked_pod", (ns, uid, svc, 0)))
        for ns, svc in services:
            for pod in sorted(self.model.get_service_state(ns, svc)):
                self._both(Call("remove_service_state", (ns, svc, pod)))

    def _judge(
        self,
        what: str,
        keys: list[Key],
        candidates: list[tuple[str, ReferenceModel]],
    ) -> None:
        """Adopt the first candidate model whose view equals the store's, else fail.

        The view covers ``keys`` and every other link of their services on
        which the candidates disagree: a drain that made a link temporary
        changes no pod and no count, so only that link's own expiry tells
        the outcomes apart.
        """
        keys = [*keys, *self._undecided_links(keys, [model for _, model in candidates])]
        view = self._view(keys)
        observed = [self._normal(run(self._execute(c))) for c in view]
        for _, model in candidates:
            if [self._normal(self._expect(c, model)) for c in view] == observed:
                self.model = model
                self._settle_keys(keys)
                return
        shown = "; ".join(f"{c} -> {o!r}" for c, o in zip(view, observed, strict=True))
        labels = ", ".join(label for label, _ in candidates) or "none matched the answers"
        raise Mismatch(
            f"{what}: the state after matches no allowed outcome ({labels}); read: {shown}"
        )

    def _undecided_links(self, keys: list[Key], models: list[ReferenceModel]) -> list[Key]:
        """Links of the services of ``keys`` (not in it) whose info differs among ``models``."""
        services = {(ns, svc) for ns, _, svc in keys}
        links = sorted(
            {
                key
                for model in (self.model, *models)
                for key in model.live_links()
                if (key[0], key[2]) in services and key not in keys
            }
        )
        return [
            key
            for key in links
            if len({repr(self._expect(Call("get_link_info", key), model)) for model in models})
            > 1
        ]

    @precondition(lambda self: self.capabilities.concurrent)
    @rule(data=st.data())
    def concurrent_round(self, data: st.DataObject) -> None:
        """Start rounds of 2-4 calls at once on several executors.

        A mixed round, then a race of one racy operation on a link with no
        live link, then one on a live link: some order of the calls must
        explain every answer and the state read afterwards.
        """
        for kind in ("mixed", "fresh", "live"):
            self._round(data, kind)

    def _round(self, data: st.DataObject, kind: str) -> None:
        focus = self._link(data)
        race = kind != "mixed"
        if kind == "fresh":
            free = [u for u in self.pools.uids if self.model.live(focus[0], u, focus[2]) is None]
            if free:
                focus = (focus[0], data.draw(st.sampled_from(free), label="free uid"), focus[2])
        count = data.draw(st.integers(2, 4), label="calls")
        pool = RACY_OPERATIONS if race else ROUND_OPERATIONS
        racing = data.draw(st.sampled_from(pool), label="racing operation")
        calls = []
        for _ in range(count):
            same = race or data.draw(st.integers(0, 3), label="same link") > 0
            key = focus if same else self._link(data)
            if race or data.draw(st.booleans(), label="same operation"):
                operation = racing
            else:
                operation = data.draw(st.sampled_from(ROUND_OPERATIONS), label="operation")
            calls.append(self._call_for(operation, data, key))
        delays = data.draw(
            st.lists(st.sampled_from((0, 0, 0, 1, 2)), min_size=count, max_size=count),
            label="delays",
        )
        answers = run(run_round(self.executors, calls, delays))
        found = linearizations(self.model, calls, answers)
        if not found:
            in_order = [self._expect(c, m) for m in [clone(self.model)] for c in calls]
            raise Mismatch(
                f"concurrent round [{'; '.join(map(str, calls))}] at t={self.clock.now_ms()}: "
                f"backend returned {answers!r}, which no order of the calls gives "
                f"(the model, in the order given: {in_order!r})"
            )
        keys = [self._key_of(c) for c in calls]
        self._judge("concurrent round", keys, [(str(order), model) for order, model in found])
        self.writes += 1
        self.features.add("concurrent_round")
        event(f"concurrent round of {count}")

    def _key_of(self, call: Call) -> Key:
        args = call.args
        if call.operation in ("set_service_state", "remove_service_state", "get_service_state"):
            return (args[0], self.pools.uids[0], args[1])
        if call.operation in (
            "remove_pod_links",
            "count_pod_links",
            "set_workload_state",
            "pod_links",
        ):
            return (args[0], self.pools.uids[0], args[1])
        return (args[0], args[1], args[2])

    @precondition(lambda self: self.capabilities.concurrent)
    @rule(data=st.data())
    def placement_race(self, data: st.DataObject) -> None:
        """Several executors place one uid at once: all must get the one pod the model picks."""
        call = self._call_for("place_linked_pod", data)
        if data.draw(st.booleans(), label="ready pods first"):
            ns, _, svc = call.args[:3]
            ready = data.draw(
                st.lists(st.sampled_from(PODS), min_size=1, max_size=3), label="ready"
            )
            for pod in ready:
                self._both(Call("set_service_state", (ns, svc, pod, call.kwargs[0][1][0])))
        answers = run(run_round(self.executors, [call] * EXECUTORS, [0, 1, 2]))
        expected = self._expect(call)
        self._check(f"{call} x{EXECUTORS} concurrently", answers, [expected] * EXECUTORS)
        self._judge("placement race", [self._key_of(call)], [("one placement", self.model)])
        self.writes += 1
        self.features.add("placement_race")

    @precondition(lambda self: self.capabilities.concurrent)
    @rule(data=st.data())
    def drain_races_moves(self, data: st.DataObject) -> None:
        """Drain a pod while some of its users move away and another moves in.

        Each link is removed atomically on its own, so for every moved uid the
        removal may come before the move, after it, or (when the link was not
        on the pod for the whole drain) not at all.
        """
        ns, _, svc = self._link(data)
        pod, other = data.draw(
            st.lists(st.sampled_from(PODS), min_size=2, max_size=2, unique=True), label="pods"
        )
        uids = data.draw(
            st.lists(st.sampled_from(self.pools.uids), min_size=2, max_size=4, unique=True),
            label="uids",
        )
        for uid in uids[:-1]:
            self._both(Call("set_linked_pod", (ns, uid, svc, pod, -1)))
        persist = self._persist(data, REMOVE_PERSIST)
        drain = Call("remove_pod_links", (ns, svc, pod, persist))
        moved = data.draw(st.integers(1, len(uids) - 1), label="moved away")
        moves = [Call("set_linked_pod", (ns, uid, svc, other, -1)) for uid in uids[:moved]]
        moves.append(Call("set_linked_pod", (ns, uids[-1], svc, pod, -1)))  # moves in
        delays = data.draw(
            st.lists(st.integers(0, 4), min_size=len(moves) + 1, max_size=len(moves) + 1),
            label="delays",
        )
        answers = run(run_round(self.executors, [drain, *moves], delays))
        removed, move_answers = answers[0], answers[1:]
        moving = {move.args[1] for move in moves}
        candidates: list[tuple[str, ReferenceModel]] = []
        possible: set[str] = set()
        for plan in itertools.product(("before", "after", "skipped"), repeat=len(moves)):
            model = clone(self.model)
            count, got = 0, []
            # The uids on the pod that nobody moves are drained in any case.
            for uid in model.pod_links(ns, svc, pod):
                if uid not in moving:
                    count += model.remove_linked_pod_with_id(ns, uid, svc, persist, pod)
            for move, when in zip(moves, plan, strict=True):
                uid = move.args[1]
                start = model.get_linked_pod(ns, uid, svc)
                if when == "skipped" and start == pod and move.args[3] == pod:
                    break  # on the pod for the whole drain: it cannot be skipped
                if when == "before":
                    count += model.remove_linked_pod_with_id(ns, uid, svc, persist, pod)
                got.append(move.on_model(model))
                if when == "after":
                    count += model.remove_linked_pod_with_id(ns, uid, svc, persist, pod)
            else:
                possible.add(f"{count} removed and moves {got!r}")
                if got == move_answers and count == removed:
                    candidates.append((",".join(plan), model))
        if not candidates:
            raise Mismatch(
                f"{drain} racing [{'; '.join(map(str, moves))}] at t={self.clock.now_ms()}: "
                f"backend returned {removed!r} removed and moves {move_answers!r}, "
                f"which no interleaving of per-link removals gives (they give: {sorted(possible)})"
            )
        keys = [(ns, m.args[1], svc) for m in moves]
        self._judge("drain racing moves", keys, candidates)
        self.writes += 1
        self.features.add("drain_race")

    @rule(data=st.data())
    def cancelled_call(self, data: st.DataObject) -> None:
        """Cancel a write, or time it out, at a random point: the store is fully before or after."""
        operations = data.draw(
            st.lists(st.sampled_from(CANCEL_OPERATIONS), min_size=2, max_size=3, unique=True),
            label="operations",
        )
        for operation in operations:
            self._cancel_one(data, operation)

    def _cancel_one(self, data: st.DataObject, operation: str) -> None:
        call = self._call_for(operation, data)
        if call.operation in ("set_service_state", "remove_service_state"):
            # Mostly a pod that has a state: a half-done overwrite shows only there.
            ns, svc = call.args[0], call.args[1]
            live = sorted(self.model.get_service_state(ns, svc))
            if not live:
                self._both(Call("set_service_state", (ns, svc, call.args[2], "ready")))
                live = [call.args[2]]
            if data.draw(st.integers(0, 3), label="pod with a state") > 0:
                args = list(call.args)
                args[2] = data.draw(st.sampled_from(live), label="pod_id")
                call = Call(call.operation, tuple(args), call.kwargs)
        elif call.operation not in ("remove_pod_links",):
            # A live link first: a half-done replacement or removal shows only there.
            ns, uid, svc = call.args[:3]
            if self.model.live(ns, uid, svc) is None:
                self._both(Call("set_linked_pod", (ns, uid, svc, 1, -1)))
        mode = data.draw(st.sampled_from(("cancel", "timeout")), label="mode")
        if mode == "cancel":
            # Several attempts of the call, each cancelled after a different number of turns.
            points = data.draw(
                st.lists(st.sampled_from((1, 2, 3, 0)), min_size=1, max_size=3, unique=True),
                label="loop turns",
            )
        else:
            points = [0]
        seconds = data.draw(st.sampled_from((0.0, 0.0002, 0.001, 0.003)), label="timeout")
        for turns in points:
            self._interrupt(call, mode, turns, seconds)
        self.writes += 1
        self.features.add(f"{mode}_round")

    def _interrupt(self, call: Call, mode: str, turns: int, seconds: float) -> None:
        """Run ``call``, cancel it after ``turns`` loop turns or time it out; judge the store."""

        async def attempt() -> Any:
            work = asyncio.ensure_future(self._execute(call))
            try:
                if mode == "cancel":
                    await yield_times(turns)
                    work.cancel()
                    return await work
                async with asyncio.timeout(seconds):
                    return await work
            except (asyncio.CancelledError, TimeoutError):
                if not work.cancelled() and work.done() and work.exception() is None:
                    return work.result()
                return _CANCELLED
            finally:
                await settle(self.executors)

        extra = self.touched if call.operation == "remove_pod_links" else []
        before = clone(self.model)
        after = clone(self.model)
        expected = self._expect(call, after)
        answer = run(attempt())
        if answer is not _CANCELLED:
            self._check(call, answer, expected)
            self.model = after
            self.features.add(f"{mode}_completed")
            self._settle_keys([self._key_of(call), *extra])
            return
        self.features.add(f"{mode}_interrupted")
        self._judge(
            f"{call} interrupted ({mode} after {turns} loop turns)",
            [self._key_of(call), *extra],
            [("before", before), ("after", after)],
        )


def conformance_machine(
    name: str, factory: BackendFactory, capabilities: Capabilities | None = None
) -> type[ConformanceMachine]:
    """Return a state machine class, named ``name``, that checks backends from ``factory``.

    ``factory(clock)`` must return a backend over an empty store that reads
    time from ``clock``. ``capabilities`` says what the backend can do (by
    default: everything the built-in backends do). Give each backend its own
    ``name``: Hypothesis keys its example database by class. Run it as a test::

        TestMyBackend = conformance_machine("MyBackendConformance", make).TestCase
    """
    namespace: dict[str, Any] = {"factory": staticmethod(factory)}
    if capabilities is not None:
        namespace["capabilities"] = capabilities
    machine = type(name, (ConformanceMachine,), namespace)
    machine.__module__ = factory.__module__
    return machine
