"""Placing new users: the least-loaded pod among those in the wanted states.

`Placer` does the executor's part of `place_linked_pod`. The backend links
the uid atomically (`Backend.place_linked_pod`), so concurrent callers for one
uid always agree; the choice of pod is made here, from the live pod states and
`count_pod_links` read just before.

A burst of new users must not all land on the pod that was least loaded at
the start of the burst. So this executor (1) shares one reading of states
and counts among the callers waiting for it, and (2) remembers the placements
it decided that a reading may not show yet, adding them to the counts: a
placement counts as pending until a reading that started after it completed
comes back. (3) A reading's count and this executor's placement writes for
the service never overlap: the count waits for the writes under way and holds
new ones back until it is read, so each placement is either in a count or
pending, never both. Under sequential use every choice is exactly the
least-loaded pod (ties: lowest id); across processes, counts read just before.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass, field

from stateful.backend import Backend


@dataclass(slots=True)
class _Placement:
    pod: int
    done_at: int | None = None  # the service's tick when it completed


@dataclass(frozen=True, slots=True)
class _Reading:
    states: dict[int, str]
    counts: dict[int, int]
    started_at: int  # the service's tick when the reading started


@dataclass(slots=True)
class _ServiceLoad:
    """What one executor knows of one service's load between readings.

    ``in_flight`` counts placements decided and not yet completed;
    ``completed`` (in completion order) those completed after the last
    reading started, which that reading may not show.
    """

    tick: int = 0
    in_flight: Counter[int] = field(default_factory=Counter)
    completed: deque[_Placement] = field(default_factory=deque)
    completed_per_pod: Counter[int] = field(default_factory=Counter)
    reading: asyncio.Future[_Reading] | None = None
    # The gate between counts and placement writes (see the module docstring).
    writing: int = 0
    no_writes: asyncio.Event = field(default_factory=asyncio.Event)
    no_count: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.no_writes.set()
        self.no_count.set()

    async def start_write(self) -> None:
        while not self.no_count.is_set():
            await self.no_count.wait()
        self.writing += 1
        self.no_writes.clear()

    def end_write(self) -> None:
        self.writing -= 1
        if not self.writing:
            self.no_writes.set()

    async def start_count(self) -> None:
        self.no_count.clear()
        while not self.no_writes.is_set():
            await self.no_writes.wait()

    def pending_on(self, pod: int) -> int:
        return self.in_flight[pod] + self.completed_per_pod[pod]

    def decide(self, pod: int) -> _Placement:
        self.in_flight[pod] += 1
        return _Placement(pod)

    def settle(self, reading: _Reading) -> None:
        # Placements completed before this reading started are in its counts.
        while self.completed and (self.completed[0].done_at or 0) <= reading.started_at:
            self.completed_per_pod[self.completed.popleft().pod] -= 1

    def complete(self, placement: _Placement) -> None:
        self.in_flight[placement.pod] -= 1
        self.tick += 1
        placement.done_at = self.tick
        self.completed.append(placement)
        self.completed_per_pod[placement.pod] += 1

    def forget(self, placement: _Placement) -> None:
        self.in_flight[placement.pod] -= 1


class Placer:
    """Chooses pods for new users of one executor's backend."""

    def __init__(self, backend: Backend) -> None:
        """Place through ``backend``."""
        self._backend = backend
        self._loads: dict[tuple[str, str], _ServiceLoad] = {}

    async def place(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        states: Collection[str],
    ) -> int | None:
        """Return the uid's pod: its live link's (refreshed), else the least-loaded one."""
        backend = self._backend
        # A returning user (the common case) costs one round trip.
        pod = await backend.place_linked_pod(namespace, uid, service_name, persist_seconds, None)
        if pod is not None:
            return pod
        load = self._loads.setdefault((namespace, service_name), _ServiceLoad())
        reading = await self._read(load, namespace, service_name)
        candidates = [p for p, state in reading.states.items() if state in states]
        if not candidates:
            return None
        choice = min(
            candidates,
            key=lambda p: (reading.counts.get(p, 0) + load.pending_on(p), p),
        )
        placement = load.decide(choice)
        try:
            await load.start_write()
        except BaseException:
            load.forget(placement)
            raise
        try:
            pod = await backend.place_linked_pod(
                namespace, uid, service_name, persist_seconds, choice
            )
            if pod == choice:
                load.complete(placement)
            else:  # a concurrent caller linked the uid first: nothing was added to `choice`
                load.forget(placement)
        except BaseException:
            load.forget(placement)
            raise
        finally:
            load.end_write()
        return pod

    async def _read(self, load: _ServiceLoad, namespace: str, service_name: str) -> _Reading:
        # Callers arriving while a reading is under way share it; it runs in its
        # own task so that one cancelled caller does not cancel it for the others.
        if load.reading is None or load.reading.done():
            load.reading = asyncio.ensure_future(self._fresh_reading(load, namespace, service_name))
            load.reading.add_done_callback(_retrieve)
        return await asyncio.shield(load.reading)

    async def _fresh_reading(
        self, load: _ServiceLoad, namespace: str, service_name: str
    ) -> _Reading:
        try:
            await load.start_count()
            started_at = load.tick
            states = await self._backend.get_service_state(namespace, service_name)
            counts = await self._backend.count_pod_links(namespace, service_name)
        finally:
            load.no_count.set()
        reading = _Reading(states, counts, started_at)
        load.settle(reading)
        return reading


def _retrieve(future: asyncio.Future[_Reading]) -> None:
    # Every waiter may have left; mark the exception as seen so asyncio stays quiet.
    if not future.cancelled():
        future.exception()
