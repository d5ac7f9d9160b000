"""The conformance state machine against a real standalone Redis and a real Redis Cluster.

Each example gets a new client and a fresh key prefix, and deletes its keys
when the machine closes the backend.
"""

from __future__ import annotations

import pytest

from stateful.backend import Backend
from stateful.clock import ManualClock
from stateful.testing import conformance_machine
from tests.redis_backend import endpoints
from tests.redis_backend.scratch import scratch_backend


async def make_standalone_backend(clock: ManualClock) -> Backend:
    return scratch_backend(endpoints.require(endpoints.STANDALONE, "redis_url"), clock)


async def make_cluster_backend(clock: ManualClock) -> Backend:
    return scratch_backend(endpoints.require(endpoints.CLUSTER, "redis_cluster_url"), clock)


_Standalone = conformance_machine("RedisStandaloneConformance", make_standalone_backend)
_Cluster = conformance_machine("RedisClusterConformance", make_cluster_backend)


@pytest.mark.usefixtures("redis_url")
class TestRedisStandaloneConformance(_Standalone.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on standalone Redis."""


@pytest.mark.usefixtures("redis_cluster_url")
class TestRedisClusterConformance(_Cluster.TestCase):  # type: ignore[name-defined,misc]
    """The state machine on a three-master Redis Cluster."""
