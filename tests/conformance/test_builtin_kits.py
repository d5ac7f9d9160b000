"""The kit's fixed areas on every built-in backend over real servers.

The state machine of each backend runs in its own folder
(tests/redis_backend/test_conformance.py, tests/sql_backend/test_conformance.py);
here the other areas run: collisions, length limits, 2,500 links, expiry
instants, the injected clock, the creation race, cancellation and faults.
"""

from __future__ import annotations

import pytest

from stateful.backend import Backend
from stateful.backends.sql import from_url
from stateful.clock import ManualClock
from stateful.testing import ConformanceKit
from tests.redis_backend import endpoints as redis_endpoints
from tests.redis_backend.scratch import scratch_backend
from tests.sql_backend import endpoints as sql_endpoints
from tests.sql_backend.scratch import empty_backend


class _FixedAreas(ConformanceKit):
    # The state machine runs in the backend's own test module.
    test_state_machine = None  # type: ignore[assignment]


class TestSQLiteMemoryKit(_FixedAreas):
    """SQLite ``:memory:``."""

    backend_name = "sqlite-memory"

    async def make_backend(self, clock: ManualClock) -> Backend:
        return from_url("sqlite+aiosqlite://", clock=clock)


@pytest.mark.usefixtures("postgres_url")
class TestPostgresKit(_FixedAreas):
    """PostgreSQL."""

    backend_name = "postgresql"

    async def make_backend(self, clock: ManualClock) -> Backend:
        url = sql_endpoints.require(sql_endpoints.POSTGRES, "postgres_url")
        return await empty_backend(url, clock)


@pytest.mark.usefixtures("mysql_url")
class TestMariaDBKit(_FixedAreas):
    """MariaDB."""

    backend_name = "mariadb"

    async def make_backend(self, clock: ManualClock) -> Backend:
        return await empty_backend(sql_endpoints.require(sql_endpoints.MYSQL, "mysql_url"), clock)


@pytest.mark.usefixtures("redis_url")
class TestRedisStandaloneKit(_FixedAreas):
    """Redis standalone."""

    backend_name = "redis"

    async def make_backend(self, clock: ManualClock) -> Backend:
        url = redis_endpoints.require(redis_endpoints.STANDALONE, "redis_url")
        return scratch_backend(url, clock)


@pytest.mark.usefixtures("redis_cluster_url")
class TestRedisClusterKit(_FixedAreas):
    """Redis Cluster."""

    backend_name = "redis-cluster"

    async def make_backend(self, clock: ManualClock) -> Backend:
        url = redis_endpoints.require(redis_endpoints.CLUSTER, "redis_cluster_url")
        return scratch_backend(url, clock)
