"""The whole conformance kit against the memory backend."""

from __future__ import annotations

from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from stateful.clock import ManualClock
from stateful.testing import Capabilities, ConformanceKit


class TestMemoryConformance(ConformanceKit):
    """Every area of the kit on ``memory://`` (one process: no cross-process atomicity)."""

    backend_name = "memory"
    capabilities = Capabilities(cross_process=False)

    async def make_backend(self, clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)
