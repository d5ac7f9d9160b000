"""Test-session set-up: Hypothesis profiles.

The profile comes from ``--hypothesis-profile`` or ``HYPOTHESIS_PROFILE``; under
``CI=true`` it is ``ci``; otherwise the quick ``default``.
"""

from __future__ import annotations

import os

from hypothesis import settings

from stateful.testing import register_profiles
from tests.support import IN_CI

# Server fixtures live in plugins so that every folder (and the backend matrix
# in tests/matrix.py) can use them.
pytest_plugins = [
    "tests.matrix",
    "tests.redis_backend.fixtures",
    "tests.sql_backend.fixtures",
    "tests.packaging.wheel",
]

register_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "default"))
