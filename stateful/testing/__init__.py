"""The conformance kit: prove that a backend behaves exactly as the contract says.

* `ReferenceModel`: the contract as a plain Python object, the oracle.
* `conformance_machine`: a Hypothesis state machine that runs random call
  sequences (all thirteen operations, clock moves onto expiry instants, bad
  input) against a backend and the model and compares every answer and the
  whole visible state.
* `register_profiles`: Hypothesis profiles ``default`` (quick), ``ci``, ``deep``.

A third-party backend proves itself in a few lines::

    from stateful.testing import conformance_machine, register_profiles

    async def make(clock):
        return MyBackend(clock=clock)   # over an empty store

    TestMyBackend = conformance_machine("MyBackendConformance", make).TestCase

Needs the ``testing`` extra (Hypothesis).
"""

from stateful.testing.loop import run, session_loop
from stateful.testing.machine import BackendFactory, ConformanceMachine, conformance_machine
from stateful.testing.model import Link, ReferenceModel
from stateful.testing.profiles import PROFILES, register_profiles

__all__ = [
    "PROFILES",
    "BackendFactory",
    "ConformanceMachine",
    "Link",
    "ReferenceModel",
    "conformance_machine",
    "register_profiles",
    "run",
    "session_loop",
]
