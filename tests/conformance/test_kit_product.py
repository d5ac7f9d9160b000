"""The kit as a third party uses it: capabilities both ways, edge-case teeth, first lines, stats."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition
from hypothesis.stateful import run_state_machine_as_test

from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from stateful.clock import ManualClock
from stateful.testing import Capabilities, ConformanceKit, conformance_machine, edge_cases, kit
from stateful.testing.loop import run
from stateful.testing.machine import Mismatch
from stateful.testing.profiles import PROFILES
from tests.conformance import broken_backends as broken

REPO = Path(__file__).resolve().parents[2]


def _factory(cls: type[MemoryBackend]) -> Callable[[ManualClock], Coroutine[Any, Any, Backend]]:
    async def make(clock: ManualClock) -> Backend:
        return cls(clock=clock)

    return make


# -- capabilities, both ways ---------------------------------------------------------


class _NoClock(ConformanceKit):
    capabilities = Capabilities(injected_clock=False, concurrent=False, max_batch=500)

    async def make_backend(self, clock: ManualClock) -> Backend:
        return broken.IgnoresInjectedClock(clock=clock)


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        ("test_injected_clock", "injected_clock"),
        ("test_expiry_instants", "injected_clock"),
        ("test_placement_write", "injected_clock"),
        ("test_creation_race", "concurrent"),
        ("test_many_links", "max_batch=500"),
    ],
)
def test_missing_capability_skips_with_the_reason(test: str, reason: str) -> None:
    with pytest.raises(pytest.skip.Exception, match=reason):
        getattr(_NoClock(), test)()


def test_undeclared_clock_still_passes_the_state_machine_without_time() -> None:
    # Without injected_clock the machine uses permanent links only and never moves
    # the clock, so a store on its own clock passes what it can promise.
    _NoClock().test_state_machine()


class _ClaimsClock(ConformanceKit):
    async def make_backend(self, clock: ManualClock) -> Backend:
        return broken.IgnoresInjectedClock(clock=clock)


def test_declared_capability_that_does_not_hold_fails() -> None:
    with pytest.raises(edge_cases.EdgeFailure, match="backend returned"):
        _ClaimsClock().test_injected_clock()


# -- the fixed checks have teeth too -----------------------------------------------------


@pytest.mark.parametrize(
    ("check", "backend"),
    [
        (edge_cases.check_collisions, broken.CaseInsensitiveUids),
        (edge_cases.check_collisions, broken.NamespaceJoinedWithColon),
        (edge_cases.check_collisions, broken.NormalisesUnicode),
        (edge_cases.check_length_limits, broken.UidTruncatedAt255),
        (edge_cases.check_length_limits, broken.StateTruncatedAt255),
        (edge_cases.check_many_links, broken.BatchOnlyFirstChunk),
        (edge_cases.check_many_links, broken.BatchChunkEdgeSkipped),
        (edge_cases.check_many_links, broken.PodLinksSkipsAcrossPages),
        (edge_cases.check_expiry_instants, broken.OffByOneExpiry),
        (edge_cases.check_expiry_instants, broken.StateTtlOffByOne),
        (edge_cases.check_creation_race, broken.CheckThenActIfAbsent),
        (edge_cases.check_creation_race, broken.CheckThenActTrySet),
        (edge_cases.check_placement_write, broken.PlaceOverwritesLiveLink),
        (edge_cases.check_cancellation, broken.CancelSafeLiarSet),
        (edge_cases.check_cancellation, broken.CancelSafeLiarState),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_fixed_check_catches(
    check: Callable[..., Coroutine[Any, Any, None]], backend: type[MemoryBackend]
) -> None:
    with pytest.raises(edge_cases.EdgeFailure):
        run(check(_factory(backend)))


@pytest.mark.parametrize(
    "backend",
    [broken.CheckThenActIfAbsent, broken.CheckThenActTrySet, broken.SetReturnsNewPod],
    ids=lambda cls: cls.__name__,
)
def test_linearizability_checker_catches(backend: type[MemoryBackend]) -> None:
    # The kit runs three seeds; at least one must show the violation.
    failures = []
    for seed in range(3):
        try:
            run(edge_cases.check_histories(_factory(backend), seed))
        except edge_cases.EdgeFailure as failure:
            failures.append(str(failure).splitlines()[0])
    assert failures, f"{backend.__name__} passed three concurrent histories"


# -- what a third party sees when it fails ------------------------------------------------


class _KitOnMemory(ConformanceKit):
    async def make_backend(self, clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)


def _flaky_after(mismatch: Mismatch | None, group: bool) -> Callable[..., None]:
    """A stand-in for Hypothesis's runner that fails as an unreplayable failure does."""

    def runner(*args: object, **kwargs: object) -> None:
        if group:
            inner = [mismatch] if mismatch is not None else [ValueError("other")]
            raise FlakyFailure("Inconsistent results", inner)
        try:
            if mismatch is not None:
                raise mismatch
            raise ValueError("other")
        except (Mismatch, ValueError):
            raise FlakyStrategyDefinition("Inconsistent data generation!") from None

    return runner


@pytest.mark.parametrize("group", [False, True], ids=["strategy", "failure"])
def test_a_failure_that_cannot_be_replayed_is_still_headed_by_its_mismatch(
    monkeypatch: pytest.MonkeyPatch, group: bool
) -> None:
    first = "set_linked_pod('n', 'u', 's', 3, -1) interrupted: the state after matches nothing"
    original = Mismatch(f"{first}\nread: ...")
    monkeypatch.setattr(kit, "run_state_machine_as_test", _flaky_after(original, group))
    with pytest.raises(Mismatch) as caught:
        _KitOnMemory().test_state_machine()
    assert str(caught.value).splitlines()[0] == first
    assert "not replayed" in str(caught.value)
    # A Flaky error with no mismatch inside is left as Hypothesis raised it.
    monkeypatch.setattr(kit, "run_state_machine_as_test", _flaky_after(None, group))
    with pytest.raises(FlakyFailure if group else FlakyStrategyDefinition):
        _KitOnMemory().test_state_machine()


def test_first_line_of_a_failure_names_the_call_and_both_answers(tmp_path: Path) -> None:
    test_file = tmp_path / "test_third_party.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from stateful.testing import ConformanceKit
            from tests.conformance.broken_backends import SetReturnsNewPod

            class TestBroken(ConformanceKit):
                async def make_backend(self, clock):
                    return SetReturnsNewPod(clock=clock)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(REPO)
    env["STATEFUL_KIT_SHRINK_SECONDS"] = "10"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    command += ["-k", "state_machine", "--rootdir", str(tmp_path)]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "TestBroken.test_state_machine" in line)
    first = lines[header + 1]
    assert first.startswith("set_linked_pod("), first
    assert "backend returned" in first and "the model" in first, first
    assert "state.set_linked_pod(" in result.stdout or "state = " in result.stdout


# -- coverage statistics --------------------------------------------------------------

#: Minimum share of ``ci`` examples that must reach each feature (see docs/conformance.md).
MINIMUM_SHARES = {
    "concurrent_round": 0.25,
    "cancel_interrupted": 0.1,
    "timeout_round": 0.1,
    "batch>1000": 0.2,
    "batch>2000": 0.15,
    "at_length_limit": 0.5,
    "class:case": 0.5,
    "class:space": 0.4,
    "class:unicode": 0.3,
    "class:prefix": 0.5,
    "class:escape": 0.4,
    "class:length": 0.5,
    "link_expiry-1": 0.15,
    "link_expiry+0": 0.15,
    "link_expiry+1": 0.15,
    "state_expiry+0": 0.1,
    "recheck_after_write": 0.3,
    "drain_race": 0.2,
    "placement_race": 0.2,
    "expiry_sweep": 0.15,
    # 22% in one run, 14% in a full-suite run: the rounds' timings steer generation.
    "pair_linked:case": 0.1,
}


def test_ci_examples_reach_every_feature() -> None:
    async def make(clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)

    machine = conformance_machine("StatisticsProbe", make)
    machine.collect = []
    run_state_machine_as_test(
        machine,
        settings=settings(
            settings.get_profile("ci"),
            max_examples=PROFILES["ci"]["max_examples"],
            derandomize=True,
            database=None,
            phases=[Phase.generate],
        ),
    )
    examples = len(machine.collect)
    counts = collections.Counter(f for features in machine.collect for f in features)
    shares = {feature: counts[feature] / examples for feature in MINIMUM_SHARES}
    print(f"{examples} ci examples")
    for feature, count in sorted(counts.items()):
        print(f"{feature:40s} {count / examples:6.0%}")
    low = {f: round(s, 2) for f, s in shares.items() if s < MINIMUM_SHARES[f]}
    assert not low, f"features reached by too few of {examples} ci examples: {low}"
