"""The conformance kit: prove that a backend behaves exactly as the contract says.

* `ConformanceKit`: subclass it in your tests, give it ``make_backend(clock)``
  and your `Capabilities`, and pytest runs every area of the kit.
* `conformance_machine`: the Hypothesis state machine alone (random call
  sequences against the `ReferenceModel`, with concurrency, placement,
  drain and cancellation rounds, expiry instants, collision pools).
* `FaultyBackend`: a wrapper that loses the connection before or after a call.
* `register_profiles` / `load_kit_profile`: Hypothesis profiles ``default``
  (quick), ``ci``, ``deep``; the kit's pytest plugin loads them for you.

A third-party backend proves itself in a few lines::

    from stateful.testing import Capabilities, ConformanceKit

    class TestMyBackend(ConformanceKit):
        capabilities = Capabilities()

        @staticmethod
        async def make_backend(clock):
            return MyBackend(clock=clock)   # over an empty store

Needs the ``testing`` extra (Hypothesis, pytest). See docs/conformance.md.
"""

from stateful.testing.capabilities import Capabilities
from stateful.testing.faults import FaultyBackend
from stateful.testing.kit import ConformanceKit
from stateful.testing.loop import run, session_loop
from stateful.testing.machine import (
    BackendFactory,
    ConformanceMachine,
    Mismatch,
    conformance_machine,
)
from stateful.testing.model import Link, ReferenceModel
from stateful.testing.profiles import PROFILES, load_kit_profile, register_profiles

__all__ = [
    "PROFILES",
    "BackendFactory",
    "Capabilities",
    "ConformanceKit",
    "ConformanceMachine",
    "FaultyBackend",
    "Link",
    "Mismatch",
    "ReferenceModel",
    "conformance_machine",
    "load_kit_profile",
    "register_profiles",
    "run",
    "session_loop",
]
