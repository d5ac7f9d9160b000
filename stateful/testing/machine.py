"""The conformance state machine: random call sequences against a backend and the model.

Every rule calls one operation on both a `StatefulExecutor` over the backend
under test and the `ReferenceModel`, with one shared `ManualClock`, and
compares the results; a rule that moves the clock aims at pending expiry
instants and one millisecond either side; another compares the whole visible
state. Identifiers come from small pools of deliberately hostile strings so
that the same links are hit again and again and a key encoding that is not
injective shows up as two tuples sharing a link.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from stateful.backend import Backend
from stateful.clock import ManualClock
from stateful.errors import ValidationError
from stateful.executor import StatefulExecutor
from stateful.testing.loop import cancel_leftover_tasks, run
from stateful.testing.model import ReferenceModel

#: Builds a backend over an EMPTY store that reads time from the given clock.
BackendFactory: TypeAlias = Callable[[ManualClock], Coroutine[Any, Any, Backend]]

# ("a", "b:c") and ("a:b", "c") alias under a naive "ns:uid" join; braces move
# hash slots; case and trailing-space variants alias under loose collations.
NAMESPACES = ("a", "a:b", "{a}")
UIDS = ("c", "b:c", "C", "c ", "{a}:c", "é😀", "%3A")
SERVICES = ("s", "b:s", "S")
STATES = ("ready", "draining", "ü:{x} ")
PODS = (0, 1, 2, 2**31 - 1)
SET_PERSIST = (-1, -1, 1, 2, 3, 315_360_000)
REMOVE_PERSIST = (-1, 0, 1, 2, 315_360_000)
# Clock moves that are not aimed at an expiry: a few steps, and far jumps.
FAR_JUMPS_MS = (60_000, 3_600_000, 315_360_000_000)

_hostile_text = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs"], exclude_characters="\x00", max_codepoint=0x1F64F
    ),
    min_size=1,
    max_size=6,
)


class ConformanceMachine(RuleBasedStateMachine):
    """Compares a backend with the reference model; subclass via `conformance_machine`."""

    factory: BackendFactory

    def __init__(self) -> None:
        """Create the clock, the model and the backend for one test case."""
        super().__init__()
        self.clock = ManualClock(start_ms=1_700_000_000_000)
        self.model = ReferenceModel(self.clock)
        self.executor = StatefulExecutor(run(type(self).factory(self.clock)))
        self.namespaces = list(NAMESPACES)
        self.uids = list(UIDS)
        self.services = list(SERVICES)
        self.touched: list[tuple[str, str, str]] = []

    def teardown(self) -> None:
        """Close the backend and cancel whatever it left on the loop."""
        try:
            run(self.executor.aclose())
        finally:
            cancel_leftover_tasks()

    # -- drawing arguments ---------------------------------------------------------

    @initialize(data=st.data())
    def choose_identifiers(self, data: st.DataObject) -> None:
        """Pick this run's few identifiers: hostile fixed ones plus maybe a random one each.

        Few identifiers and a bias towards links already touched make most
        calls land on existing links, where the interesting rules live.
        """
        for pool, fixed, most in (
            (self.namespaces, NAMESPACES, 3),
            (self.uids, UIDS, 4),
            (self.services, SERVICES, 2),
        ):
            choices = st.one_of(st.sampled_from(fixed), _hostile_text)
            pool[:] = data.draw(st.lists(choices, min_size=1, max_size=most, unique=True))

    def _link(self, data: st.DataObject) -> tuple[str, str, str]:
        reuse: bool = data.draw(st.booleans(), label="reuse") if self.touched else False
        if reuse:
            return data.draw(st.sampled_from(self.touched), label="link")
        link = (
            data.draw(st.sampled_from(self.namespaces), label="namespace"),
            data.draw(st.sampled_from(self.uids), label="uid"),
            data.draw(st.sampled_from(self.services), label="service_name"),
        )
        if link not in self.touched:
            self.touched.append(link)
        return link

    def _check(
        self, operation: str, args: tuple[Any, ...], actual: object, expected: object
    ) -> None:
        assert actual == expected, (
            f"{operation}{args!r} at t={self.clock.now_ms()}: "
            f"backend returned {actual!r}, the model {expected!r}"
        )

    def _both(self, operation: str, *args: Any) -> None:
        expected = getattr(self.model, operation)(*args)
        actual = run(getattr(self.executor, operation)(*args))
        self._check(operation, args, actual, expected)

    # -- pod and workload states ---------------------------------------------------

    @rule(data=st.data(), pod=st.sampled_from(PODS), state=st.sampled_from(STATES))
    def set_service_state(self, data: st.DataObject, pod: int, state: str) -> None:
        """Set a pod state."""
        ns, _, svc = self._link(data)
        self._both("set_service_state", ns, svc, pod, state)

    @rule(data=st.data())
    def get_service_state(self, data: st.DataObject) -> None:
        """Read a service's pod states."""
        ns, _, svc = self._link(data)
        self._both("get_service_state", ns, svc)

    @rule(data=st.data(), state=st.sampled_from(STATES))
    def set_workload_state(self, data: st.DataObject, state: str) -> None:
        """Set a workload state."""
        ns, _, svc = self._link(data)
        self._both("set_workload_state", ns, svc, state)

    @rule(data=st.data())
    def get_workload_state(self, data: st.DataObject) -> None:
        """Read workload states of a list of services (duplicates and empty lists too)."""
        ns, _, _ = self._link(data)
        names = data.draw(st.lists(st.sampled_from(self.services), max_size=5), label="names")
        self._both("get_workload_state", ns, names)

    # -- links ---------------------------------------------------------------------

    @rule(data=st.data(), pod=st.sampled_from(PODS), ttl=st.sampled_from(SET_PERSIST))
    def set_linked_pod(self, data: st.DataObject, pod: int, ttl: int) -> None:
        """Link unconditionally."""
        self._both("set_linked_pod", *self._link(data), pod, ttl)

    @rule(data=st.data(), pod=st.sampled_from(PODS), ttl=st.sampled_from(SET_PERSIST))
    def try_set_linked_pod(self, data: st.DataObject, pod: int, ttl: int) -> None:
        """Link unless permanently linked elsewhere."""
        self._both("try_set_linked_pod", *self._link(data), pod, ttl)

    @rule(data=st.data(), pod=st.sampled_from(PODS), ttl=st.sampled_from(SET_PERSIST))
    def set_linked_pod_if_absent(self, data: st.DataObject, pod: int, ttl: int) -> None:
        """Link if absent, else keep and refresh."""
        self._both("set_linked_pod_if_absent", *self._link(data), pod, ttl)

    @rule(data=st.data())
    def get_linked_pod(self, data: st.DataObject) -> None:
        """Read one link."""
        self._both("get_linked_pod", *self._link(data))

    @rule(data=st.data())
    def get_linked_pod_if_persist(self, data: st.DataObject) -> None:
        """Read one link if permanent."""
        self._both("get_linked_pod_if_persist", *self._link(data))

    @rule(data=st.data())
    def batch_get_linked_pod(self, data: st.DataObject) -> None:
        """Read many links of one service (duplicates and empty lists too)."""
        ns, _, svc = self._link(data)
        uids = data.draw(st.lists(st.sampled_from(self.uids), max_size=10), label="uids")
        self._both("batch_get_linked_pod", ns, uids, svc)

    @rule(data=st.data(), ttl=st.sampled_from(REMOVE_PERSIST))
    def remove_linked_pod(self, data: st.DataObject, ttl: int) -> None:
        """Remove a link or keep it for a persist window."""
        self._both("remove_linked_pod", *self._link(data), ttl)

    @rule(data=st.data(), ttl=st.sampled_from(REMOVE_PERSIST), pod=st.sampled_from(PODS))
    def remove_linked_pod_with_id(self, data: st.DataObject, ttl: int, pod: int) -> None:
        """Remove a link only if it points at the pod."""
        self._both("remove_linked_pod_with_id", *self._link(data), ttl, pod)

    @rule(data=st.data())
    def get_link_service(self, data: st.DataObject) -> None:
        """List a uid's permanent links."""
        ns, uid, _ = self._link(data)
        self._both("get_link_service", ns, uid)

    # -- time, bad input, whole state ----------------------------------------------

    @rule(data=st.data())
    def advance_clock(self, data: st.DataObject) -> None:
        """Move time: onto a pending expiry or 1 ms either side, a little, or far."""
        now = self.clock.now_ms()
        pending = self.model.pending_expiries()
        kinds = ["near", "far"] + (["expiry"] * 4 if pending else [])
        kind = data.draw(st.sampled_from(kinds), label="move")
        if kind == "expiry":
            target = data.draw(st.sampled_from(pending), label="expiry")
            target += data.draw(st.sampled_from((0, -1, 1)), label="offset")
            delta = max(0, target - now)
        elif kind == "near":
            delta = data.draw(st.integers(0, 2500), label="delta_ms")
        else:
            delta = data.draw(st.sampled_from(FAR_JUMPS_MS), label="delta_ms")
        self.clock.advance_ms(delta)

    @rule(data=st.data(), bad_pod=st.sampled_from((-1, 2**31, True)))
    def rejected_call_writes_nothing(self, data: st.DataObject, bad_pod: int) -> None:
        """Send a bad pod id: it must raise ValidationError and write nothing."""
        ns, uid, svc = self._link(data)
        try:
            run(self.executor.set_linked_pod(ns, uid, svc, bad_pod, -1))
        except ValidationError as error:
            assert error.argument == "pod_id"
        else:
            raise AssertionError(f"pod_id={bad_pod!r} was accepted")

    @rule()
    def whole_state_matches(self) -> None:
        """Compare everything a client can see in every namespace."""
        run(self._compare_whole_state())

    async def _compare_whole_state(self) -> None:
        ex, model = self.executor, self.model
        for ns in self.namespaces:
            for svc in self.services:
                args: tuple[Any, ...] = (ns, self.uids, svc)
                self._check(
                    "batch_get_linked_pod",
                    args,
                    await ex.batch_get_linked_pod(*args),
                    model.batch_get_linked_pod(*args),
                )
                args = (ns, svc)
                self._check(
                    "get_service_state",
                    args,
                    await ex.get_service_state(*args),
                    model.get_service_state(*args),
                )
            args = (ns, self.services)
            self._check(
                "get_workload_state",
                args,
                await ex.get_workload_state(*args),
                model.get_workload_state(*args),
            )
            for uid in self.uids:
                args = (ns, uid)
                self._check(
                    "get_link_service",
                    args,
                    await ex.get_link_service(*args),
                    model.get_link_service(*args),
                )


def conformance_machine(name: str, factory: BackendFactory) -> type[ConformanceMachine]:
    """Return a state machine class, named ``name``, that checks backends from ``factory``.

    ``factory(clock)`` must return a backend over an empty store that reads
    time from ``clock``. Give each backend its own ``name``: Hypothesis keys
    its example database by class. Run it as a test with::

        TestMyBackend = conformance_machine("MyBackendConformance", make).TestCase
    """
    machine = type(name, (ConformanceMachine,), {"factory": staticmethod(factory)})
    machine.__module__ = factory.__module__
    return machine
