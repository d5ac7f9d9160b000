"""Hypothesis profiles for the conformance kit: ``default`` (quick), ``ci``, ``deep``.

`load_kit_profile` picks one the way the kit's pytest plugin does: the
``HYPOTHESIS_PROFILE`` environment variable if set, else ``ci`` under
``CI=true``, else ``default``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Setting up a store counts against the per-example deadline and can be slow on
# a real server, so neither deadlines nor the "too slow" health check apply.
_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
    "report_multiple_bugs": False,
}

PROFILES = {
    "default": {"max_examples": 20, "stateful_step_count": 30},
    "ci": {"max_examples": 75, "stateful_step_count": 40},
    "deep": {"max_examples": 2000, "stateful_step_count": 100},
}

#: Seconds Hypothesis may spend shrinking one failure (its own cap is 300 s),
#: so that a failing run reports within a minute.
SHRINK_SECONDS = int(os.environ.get("STATEFUL_KIT_SHRINK_SECONDS", "40"))


def bound_shrinking(seconds: int = SHRINK_SECONDS) -> None:
    """Cap the time Hypothesis spends shrinking a failure.

    Hypothesis has no setting for it; its engine reads the module constant
    ``MAX_SHRINKING_SECONDS`` when shrinking starts, so the kit lowers it
    (and leaves it alone if a future Hypothesis drops the constant).
    """
    from hypothesis.internal.conjecture import engine

    if hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKING_SECONDS = seconds


def register_profiles() -> None:
    """Register the three profiles with Hypothesis (``default`` replaces Hypothesis's own)."""
    for name, values in PROFILES.items():
        settings.register_profile(name, **_COMMON, **values)  # type: ignore[arg-type]
    bound_shrinking()


def kit_profile_name() -> str:
    """Return the profile the environment asks for (see the module docstring)."""
    if os.environ.get("HYPOTHESIS_PROFILE"):
        return os.environ["HYPOTHESIS_PROFILE"]
    return "ci" if os.environ.get("CI", "").lower() == "true" else "default"


def load_kit_profile() -> str:
    """Register the profiles and load the one the environment asks for; return its name."""
    register_profiles()
    name = kit_profile_name()
    settings.load_profile(name)
    return name
