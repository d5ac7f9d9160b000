"""Where the session's SQL databases are, for code outside pytest fixtures.

The conformance machine's factories run inside Hypothesis, where fixtures
cannot be injected; their test classes request the session fixtures (which
fill these in) with ``pytest.mark.usefixtures``.
"""

from __future__ import annotations

import os

#: Table prefix of this test session: runs sharing a server do not meet.
PREFIX = f"t{os.getpid()}_"

POSTGRES: str | None = None
MYSQL: str | None = None
SQLITE_FILE: str | None = None


def require(url: str | None, name: str) -> str:
    """Return ``url``, or fail loudly if its fixture did not run first."""
    if url is None:
        raise RuntimeError(f"the {name} fixture has not run")
    return url
