"""The backend matrix: every example test marked with the ``store`` fixture runs on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stateful import ManualClock, StatefulExecutor
from stateful.backend import Backend
from stateful.backends.memory import MemoryBackend
from tests.redis_backend.scratch import scratch_backend

# Each name has a fixture ``<name>_store_factory`` returning an async
# ``factory(clock) -> Backend`` over an empty store; the SQL ones live in
# tests/sql_backend/fixtures.py.
BACKENDS = ["memory", "redis", "redis_cluster", "sqlite", "postgresql", "mariadb"]

StoreFactory = Callable[[ManualClock], Awaitable[Backend]]


@pytest.fixture
def memory_store_factory() -> StoreFactory:
    async def make(clock: ManualClock) -> Backend:
        return MemoryBackend(clock=clock)

    return make


@pytest.fixture
def redis_store_factory(redis_url: str) -> StoreFactory:
    async def make(clock: ManualClock) -> Backend:
        return scratch_backend(redis_url, clock)

    return make


@pytest.fixture
def redis_cluster_store_factory(redis_cluster_url: str) -> StoreFactory:
    async def make(clock: ManualClock) -> Backend:
        return scratch_backend(redis_cluster_url, clock)

    return make


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[StatefulExecutor, ManualClock]]:
    """An executor over an empty store of each backend, with a ManualClock."""
    factory: StoreFactory = request.getfixturevalue(f"{request.param}_store_factory")
    clock = ManualClock(start_ms=1_800_000_000_000)
    executor = StatefulExecutor(await factory(clock))
    try:
        yield executor, clock
    finally:
        await executor.aclose()
