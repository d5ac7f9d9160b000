"""The stateful conformance kit against the JSON-file backend."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from stateful_jsonfile import JsonFileBackend

from stateful.clock import ManualClock
from stateful.testing import Capabilities, ConformanceKit

# Removed when the test run ends (TemporaryDirectory cleans up at exit).
_TMP = tempfile.TemporaryDirectory(prefix="stateful-jsonfile-")
_DIR = Path(_TMP.name)
_NAMES = itertools.count()


class TestJsonFileConformance(ConformanceKit):
    """Every area of the kit; each backend gets a new, empty file."""

    backend_name = "jsonfile"
    capabilities = Capabilities(cross_process=True)

    async def make_backend(self, clock: ManualClock) -> JsonFileBackend:
        """Return a backend over a new file (the kit wants an empty store each time)."""
        return JsonFileBackend(_DIR / f"store-{next(_NAMES)}.json", clock=clock)
