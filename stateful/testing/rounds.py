"""Concurrent and cancelled calls, and how their outcome is judged against the model.

A *round* starts a few calls at once on several executors over one store.
Every call of a round overlaps every other, so the round is linearizable iff
some order of its calls, applied to the model, gives every answer the store
gave and leaves the state the store shows afterwards. Rounds are small (at
most four calls), so the kit tries every order.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stateful.executor import StatefulExecutor
from stateful.testing.model import ReferenceModel

#: Operations whose answer and effect are linearizable on their own.
ATOMIC_OPERATIONS = (
    "set_service_state",
    "remove_service_state",
    "get_service_state",
    "set_workload_state",
    "get_workload_state",
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "get_linked_pod",
    "get_linked_pod_if_persist",
    "batch_get_linked_pod",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "get_link_service",
    "get_link_info",
)


@dataclass(frozen=True)
class Call:
    """One operation with its positional and keyword arguments."""

    operation: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()

    def on_model(self, model: ReferenceModel) -> Any:
        """Apply the call to ``model`` and return the model's answer."""
        return getattr(model, self.operation)(*self.args, **dict(self.kwargs))

    async def on_executor(self, executor: StatefulExecutor) -> Any:
        """Make the call on ``executor`` and return the store's answer."""
        method: Callable[..., Awaitable[Any]] = getattr(executor, self.operation)
        return await method(*self.args, **dict(self.kwargs))

    def __str__(self) -> str:
        parts = [repr(_short(a)) for a in self.args]
        parts += [f"{k}={_short(v)!r}" for k, v in self.kwargs]
        return f"{self.operation}({', '.join(parts)})"


def _short(value: Any) -> Any:
    # Identifiers at the length limit would drown the message.
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:12]}...<{len(value)} chars>...{value[-4:]}"
    if isinstance(value, list) and len(value) > 8:
        return f"<list of {len(value)}>"
    return value


def clone(model: ReferenceModel) -> ReferenceModel:
    """Deep-copy a model's state; the clone shares the original's clock."""
    return copy.deepcopy(model, memo={id(model.clock): model.clock})


async def yield_times(count: int) -> None:
    """Let the loop run ``count`` times, so calls interleave at different awaits."""
    for _ in range(count):
        await asyncio.sleep(0)


async def run_round(
    executors: Sequence[StatefulExecutor], calls: Sequence[Call], delays: Sequence[int]
) -> list[Any]:
    """Start ``calls`` at once, call i on executor i (mod n) after ``delays[i]`` loop turns."""

    async def one(index: int, call: Call) -> Any:
        await yield_times(delays[index])
        return await call.on_executor(executors[index % len(executors)])

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(calls))))


def linearizations(
    model: ReferenceModel, calls: Sequence[Call], answers: Sequence[Any]
) -> list[tuple[tuple[int, ...], ReferenceModel]]:
    """Return every order of ``calls`` whose model answers equal ``answers``, with its end state."""
    found = []
    for order in itertools.permutations(range(len(calls))):
        trial = clone(model)
        results: list[Any] = [None] * len(calls)
        for index in order:
            results[index] = calls[index].on_model(trial)
        if all(results[i] == answers[i] for i in range(len(calls))):
            found.append((order, trial))
    return found


async def settle(executors: Sequence[StatefulExecutor], limit_s: float = 10.0) -> None:
    """Wait (bounded) until calls the executors finish in the background are done.

    A cancelled caller leaves a non-cancel-safe backend's call running in a
    shielded task (see `StatefulExecutor`); the store is judged after it ends.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    await yield_times(3)
    while loop.time() < deadline:
        pending = [t for ex in executors for t in getattr(ex, "_inflight", ()) if not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
