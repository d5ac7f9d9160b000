"""URLs of the servers the session fixtures started, for code outside pytest fixtures.

The conformance machine's factories run inside Hypothesis, where fixtures
cannot be injected; their test classes request the session fixture (which
fills these in) with ``pytest.mark.usefixtures``.
"""

from __future__ import annotations

STANDALONE: str | None = None
CLUSTER: str | None = None


def require(url: str | None, name: str) -> str:
    """Return ``url``, or fail loudly if its fixture did not run first."""
    if url is None:
        raise RuntimeError(f"the {name} fixture has not started a server")
    return url
