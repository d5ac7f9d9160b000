"""The fault tests' checker has teeth: broken backends are caught, a sound one passes.

`tests.faults.load.Load` must count a wrong answer when a write runs twice
(what a re-sent script does), a lost write when an acknowledged write is not
stored, and an error other than `BackendUnavailable` when a backend raises
anything else; and count none of them on the memory backend as it is.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from stateful import StatefulExecutor
from stateful.backends.memory import MemoryBackend
from tests.faults.load import Figures, Load


class RunsWritesTwice(MemoryBackend):
    """Every 20th `set_linked_pod` runs twice and answers the second run's result."""

    _count = itertools.count()

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        first = await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        if next(self._count) % 20:
            return first
        return await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)


class DropsWrites(MemoryBackend):
    """Every 20th `set_linked_pod` answers as if it wrote, and stores nothing."""

    _count = itertools.count()

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        if next(self._count) % 20:
            return await super().set_linked_pod(
                namespace, uid, service_name, pod_id, persist_seconds
            )
        return await self.get_linked_pod(namespace, uid, service_name)


class RaisesRawErrors(MemoryBackend):
    """Every 20th `get_linked_pod` raises a driver-like error that is not an outage."""

    _count = itertools.count()

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        if next(self._count) % 20 == 0:
            raise RuntimeError("protocol error")
        return await super().get_linked_pod(namespace, uid, service_name)


class FailsThenRecovers(MemoryBackend):
    """Unreachable (outcome unknown: writes may land) while ``down`` is set."""

    down = False
    _count = itertools.count()

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        if self.down:
            if next(self._count) % 2:  # half the failed writes did happen
                await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
            raise ConnectionError("connection lost")
        return await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)


async def _run(backend: MemoryBackend, seconds: float = 0.3) -> Figures:
    figures = Figures(type(backend).__name__)
    async with StatefulExecutor(backend) as executor:
        load = Load(executor, "checker", figures, workers=8)
        load.start()
        await asyncio.sleep(seconds)
        await load.stop()
        await load.read_back()
    print(figures.line())
    return figures


async def test_sound_backend_passes() -> None:
    figures = await _run(MemoryBackend())
    assert figures.calls > 100
    assert (figures.wrong, figures.lost, figures.unwrapped, figures.failed) == (0, 0, 0, 0)


async def test_writes_run_twice_are_wrong_answers() -> None:
    figures = await _run(RunsWritesTwice())
    assert figures.wrong > 0, figures.line()


async def test_dropped_writes_are_caught() -> None:
    figures = await _run(DropsWrites())
    assert figures.wrong + figures.lost > 0, figures.line()


async def test_errors_other_than_unavailable_are_counted() -> None:
    figures = await _run(RaisesRawErrors())
    assert figures.unwrapped > 0, figures.line()


async def test_unknown_outcomes_are_neither_wrong_nor_lost() -> None:
    backend = FailsThenRecovers()
    figures = Figures("FailsThenRecovers")
    async with StatefulExecutor(backend) as executor:
        load = Load(executor, "checker", figures, workers=8)
        load.start()
        await asyncio.sleep(0.1)
        backend.down = True
        await asyncio.sleep(0.2)
        backend.down = False
        await load.recovered_after(time.monotonic(), 5.0)
        await asyncio.sleep(0.1)
        await load.stop()
        await load.read_back()
    print(figures.line())
    assert figures.failed > 0
    assert (figures.wrong, figures.lost, figures.unwrapped) == (0, 0, 0), figures.examples


async def test_acknowledged_writes_missing_at_read_back_are_lost() -> None:
    backend = MemoryBackend()
    figures = Figures("links deleted behind the executor's back")
    async with StatefulExecutor(backend) as executor:
        load = Load(executor, "checker", figures, workers=8)
        load.start()
        await asyncio.sleep(0.2)
        await load.stop()
        linked = [uid for uid, values in load.possible.items() if None not in values][:5]
        assert linked, "the load linked nothing"
        for uid in linked:  # as a store that forgot acknowledged writes
            assert await backend.remove_linked_pod("checker", uid, "game", 0)
        await load.read_back()
    print(figures.line())
    assert figures.lost == len(linked), figures.examples
