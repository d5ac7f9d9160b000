"""The conformance kit must catch every deliberately broken backend; the correct one is the control.

Each broken backend gets the ``ci`` profile's examples with the seed pinned
(derandomized) and no shrinking: only "caught or not" matters, and the
verdict is the same on every run.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from stateful.clock import ManualClock
from stateful.testing import conformance_machine, edge_cases
from stateful.testing.loop import run
from stateful.testing.machine import Mismatch
from stateful.testing.profiles import PROFILES
from tests.conformance.broken_backends import BROKEN_BACKENDS

HUNT = settings(
    settings.get_profile("ci"),
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    max_examples=PROFILES["ci"]["max_examples"],
)


@pytest.mark.parametrize("broken", BROKEN_BACKENDS, ids=lambda cls: cls.__name__)
def test_kit_kills_broken_backend(broken: type[MemoryBackend]) -> None:
    async def make(clock: ManualClock) -> Backend:
        return broken(clock=clock)

    machine = conformance_machine(f"Hunt{broken.__name__}", make)
    started = time.monotonic()
    try:
        run_state_machine_as_test(machine, settings=HUNT)
    except Mismatch as caught:
        # The first line says what went wrong: the call, the backend's answer and the model's.
        first = str(caught).splitlines()[0]
        assert "backend returned" in first or "matches no allowed outcome" in first, first
    else:
        # A bug that only some interleavings show (a cancel_safe liar, a race) may
        # escape the machine's rounds at this run's timings; the kit's fixed
        # checks (ConformanceKit runs them too) then must catch it.
        first = run(_first_fixed_check_failure(make))
        assert first, f"{broken.__name__} survived the state machine and every fixed check"
    print(f"{broken.__name__}: killed in {time.monotonic() - started:.2f} s: {first[:160]}")


async def _first_fixed_check_failure(make: edge_cases.Factory) -> str:
    for check in (
        edge_cases.check_cancellation,
        edge_cases.check_creation_race,
        edge_cases.check_placement_write,
        edge_cases.check_expiry_instants,
        edge_cases.check_collisions,
        edge_cases.check_faults,
    ):
        try:
            await check(make)
        except edge_cases.EdgeFailure as failure:
            return str(failure).splitlines()[0]
    return ""


def test_correct_backend_survives_the_same_hunt() -> None:
    # The control: the hunt settings alone do not make the kit fail.
    async def make(clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)

    run_state_machine_as_test(conformance_machine("HuntControl", make), settings=HUNT)
    assert run(_first_fixed_check_failure(make)) == ""
