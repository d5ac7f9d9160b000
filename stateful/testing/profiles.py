"""Hypothesis profiles for the conformance kit: ``default`` (quick), ``ci``, ``deep``."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Setting up a store counts against the per-example deadline and can be slow on
# a real server, so neither deadlines nor the "too slow" health check apply.
_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}

PROFILES = {
    "default": {"max_examples": 20, "stateful_step_count": 30},
    "ci": {"max_examples": 75, "stateful_step_count": 40},
    "deep": {"max_examples": 2000, "stateful_step_count": 100},
}


def register_profiles() -> None:
    """Register the three profiles with Hypothesis (``default`` replaces Hypothesis's own)."""
    for name, values in PROFILES.items():
        settings.register_profile(name, **_COMMON, **values)  # type: ignore[arg-type]
