"""The conformance state machine against the memory backend."""

from __future__ import annotations

from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from stateful.clock import ManualClock
from stateful.testing import conformance_machine


async def make_memory_backend(clock: ManualClock) -> Backend:
    return MemoryBackend(clock=clock)


TestMemoryConformance = conformance_machine("MemoryConformance", make_memory_backend).TestCase
