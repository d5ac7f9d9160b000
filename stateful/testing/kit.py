"""`ConformanceKit`: the whole conformance kit as a pytest test class.

A third party proves its backend by subclassing it in its own tests::

    from stateful.testing import Capabilities, ConformanceKit

    class TestMyBackend(ConformanceKit):
        capabilities = Capabilities(concurrent=True)   # what it can do

        @staticmethod
        async def make_backend(clock):
            return MyBackend(clock=clock)              # over an EMPTY store

and gets every area: the state machine (with its concurrency, placement,
drain and cancellation rounds), the fixed edge cases, the creation race,
cancellation at every loop turn, injected connection faults and the clock.
A test needing a capability the backend does not declare is skipped with the
reason; a declared capability that does not hold fails its test. With the
kit's pytest plugin (installed with the package) the Hypothesis profiles
apply (``ci`` under ``CI=true``, ``deep`` with ``HYPOTHESIS_PROFILE=deep``),
a failure's first line names the call and both answers, and
``--stateful-report report.json`` writes what passed, per area.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test

from stateful.backend import Backend
from stateful.clock import ManualClock
from stateful.testing import edge_cases
from stateful.testing.capabilities import Capabilities
from stateful.testing.loop import cancel_leftover_tasks, run
from stateful.testing.machine import (
    BackendFactory,
    Mismatch,
    conformance_machine,
    mismatch_behind,
)

#: Test method name → the area it reports under.
AREAS = {
    "test_state_machine": "state_machine",
    "test_collisions": "edge_cases",
    "test_length_limits": "edge_cases",
    "test_many_links": "large_batches",
    "test_expiry_instants": "clock",
    "test_injected_clock": "clock",
    "test_placement_write": "clock",
    "test_creation_race": "concurrency",
    "test_linearizable_histories": "concurrency",
    "test_cancellation": "cancellation",
    "test_faults": "faults",
}


class ConformanceKit:
    """Base class of a backend's conformance tests; see the module docstring."""

    #: What the backend declares it can do.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Name in reports (default: the class name).
    backend_name: ClassVar[str | None] = None

    async def make_backend(self, clock: ManualClock) -> Backend:
        """Return a backend over an EMPTY store that reads time from ``clock`` (override)."""
        raise NotImplementedError("subclasses of ConformanceKit define make_backend(clock)")

    # -- plumbing ------------------------------------------------------------------

    def _factory(self) -> BackendFactory:
        return self.make_backend

    def _needs(self, capability: str) -> None:
        reason = type(self).capabilities.missing(capability)
        if reason is not None:
            pytest.skip(reason)

    def _run(self, check: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        try:
            run(check(self._factory(), *args))
        finally:
            cancel_leftover_tasks()

    # -- the areas -----------------------------------------------------------------

    def test_state_machine(self) -> None:
        """Random call sequences against the model (rounds and cancellations included)."""
        factory = self._factory()
        machine = conformance_machine(
            f"{type(self).__name__}Machine", factory, type(self).capabilities
        )
        machine.__module__ = type(self).__module__
        try:
            run_state_machine_as_test(machine, settings=settings())
        except Flaky as flaky:
            # Hypothesis could not replay a failure that depended on timing and
            # heads its report "Inconsistent data generation": head it with
            # the mismatch instead, so the first line still names the call.
            found = mismatch_behind(flaky)
            if found is None:
                raise
            raise Mismatch(
                f"{found}\n(seen once and not replayed: it depended on timing; "
                f"Hypothesis reported {type(flaky).__name__})"
            ) from flaky

    def test_collisions(self) -> None:
        """Identifiers a careless store confuses each get their own link."""
        self._run(edge_cases.check_collisions)

    def test_length_limits(self) -> None:
        """Identifiers and states at the length limits."""
        self._run(edge_cases.check_length_limits)

    def test_many_links(self) -> None:
        """Batches, walks, counts and drains past 1,000 and 2,000 links."""
        self._needs("large_batch")
        self._run(edge_cases.check_many_links)

    def test_expiry_instants(self) -> None:
        """Every operation 1 ms before, at and 1 ms after expiry instants."""
        self._needs("injected_clock")
        self._run(edge_cases.check_expiry_instants)

    def test_injected_clock(self) -> None:
        """The backend follows the clock it is given, to the millisecond."""
        self._needs("injected_clock")
        self._run(edge_cases.check_injected_clock)

    def test_placement_write(self) -> None:
        """The backend's placement write keeps every live link's pod."""
        self._needs("injected_clock")
        self._run(edge_cases.check_placement_write)

    def test_creation_race(self) -> None:
        """Many executors creating or placing one link at once agree on one pod."""
        self._needs("concurrent")
        self._run(edge_cases.check_creation_race)

    def test_linearizable_histories(self) -> None:
        """Random concurrent clients; their history checked by the linearizability checker."""
        self._needs("concurrent")
        for seed in range(3):
            self._run(edge_cases.check_histories, seed)

    def test_cancellation(self) -> None:
        """Each write cancelled at every loop turn leaves the store before or after it."""
        self._run(edge_cases.check_cancellation)

    def test_faults(self) -> None:
        """A connection lost before or after a write: BackendUnavailable, store before or after."""
        self._run(edge_cases.check_faults)
