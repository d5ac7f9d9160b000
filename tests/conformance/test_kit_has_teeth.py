"""The conformance machine must catch every deliberately broken backend."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from stateful.clock import ManualClock
from stateful.testing import conformance_machine
from tests.conformance.broken_backends import BROKEN_BACKENDS

# Enough random programs that each bug is met; no shrinking (only "caught?"
# matters) and derandomized so the verdict is the same on every run.
HUNT = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


@pytest.mark.parametrize("broken", BROKEN_BACKENDS, ids=lambda cls: cls.__name__)
def test_state_machine_catches_broken_backend(broken: type[MemoryBackend]) -> None:
    async def make(clock: ManualClock) -> Backend:
        return broken(clock=clock)

    machine = conformance_machine(f"Hunt{broken.__name__}", make)
    with pytest.raises(AssertionError, match="backend returned"):
        run_state_machine_as_test(machine, settings=HUNT)


def test_state_machine_passes_the_correct_backend_with_the_same_settings() -> None:
    # The control: the hunt settings alone do not make the machine fail.
    async def make(clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)

    run_state_machine_as_test(conformance_machine("HuntControl", make), settings=HUNT)
