"""stateful: async store for the routing state of stateful services.

Routers of game servers, chat rooms and actor-like sessions use it to send
every request of a user to the same pod, and to know each pod's state and each
service's workload state::

    import stateful

    async with stateful.connect("sqlite+aiosqlite:///routing.db") as ex:
        await ex.set_linked_pod("prod", "user-1", "game", 3, -1)
        assert await ex.get_linked_pod("prod", "user-1", "game") == 3
"""

from stateful.backend import Backend
from stateful.clock import Clock, ManualClock, SystemClock
from stateful.errors import (
    BackendError,
    BackendUnavailable,
    PoolExhausted,
    SchemaError,
    StatefulError,
    ValidationError,
)
from stateful.executor import Observer, StatefulExecutor
from stateful.records import LinkInfo
from stateful.registry import BackendFactory, connect, register_backend
from stateful.validation import PERMANENT

__all__ = [
    "PERMANENT",
    "Backend",
    "BackendError",
    "BackendFactory",
    "BackendUnavailable",
    "Clock",
    "LinkInfo",
    "ManualClock",
    "Observer",
    "PoolExhausted",
    "SchemaError",
    "StatefulError",
    "StatefulExecutor",
    "SystemClock",
    "ValidationError",
    "connect",
    "register_backend",
]

__version__ = "0.1.0"
