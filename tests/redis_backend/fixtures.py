"""Redis servers for the tests (a pytest plugin, loaded by the root conftest).

* standalone: ``STATEFUL_TEST_REDIS_URL`` if set, else 127.0.0.1:6379 if it
  answers PING, else a spawned ``redis-server``;
* cluster: ``STATEFUL_TEST_REDIS_CLUSTER_URL`` if set, else three spawned masters;
* sentinel: a spawned master and sentinel.

A missing server skips locally and fails under ``CI=true`` (`server_missing`).
The session fixtures also publish their URL in `endpoints`, where factories
that run outside pytest's fixture system (the conformance machine's) read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_backend import endpoints
from tests.redis_backend.servers import (
    RedisClusterProcesses,
    RedisProcess,
    SentinelProcesses,
    redis_server_binary,
)
from tests.support import port_open, server_missing


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def _need_binary(what: str) -> None:
    if redis_server_binary() is None:
        server_missing(f"no Redis for the {what} tests: redis-server is not on PATH")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a standalone Redis (shared: tests isolate themselves by key prefix)."""
    url = os.environ.get("STATEFUL_TEST_REDIS_URL")
    if url:
        if not _answers(url):
            server_missing(f"STATEFUL_TEST_REDIS_URL={url} does not answer")
    elif port_open("127.0.0.1", 6379) and _answers("redis://127.0.0.1:6379/0"):
        url = "redis://127.0.0.1:6379/0"
    if url:
        endpoints.STANDALONE = url
        yield url
        return
    _need_binary("standalone")
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    endpoints.STANDALONE = server.url
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ``redis+cluster://…`` of a Redis Cluster with three masters."""
    url = os.environ.get("STATEFUL_TEST_REDIS_CLUSTER_URL")
    if url:
        endpoints.CLUSTER = url
        yield url
        return
    _need_binary("cluster")
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster"))
    endpoints.CLUSTER = cluster.url
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """The standalone URL, then the cluster URL (a test runs on both)."""
    fixture = "redis_url" if request.param == "standalone" else "redis_cluster_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(scope="session")
def redis_cluster_ports(redis_cluster_url: str) -> list[int]:
    """Ports of the cluster's startup nodes (all masters when spawned here)."""
    hosts = redis_cluster_url.partition("://")[2].split("/")[0].split(",")
    return [int(host.rpartition(":")[2]) for host in hosts]


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelProcesses]:
    """A spawned master watched by one sentinel."""
    _need_binary("sentinel")
    processes = SentinelProcesses(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        yield processes
    finally:
        processes.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A spawned standalone server of one's own, for tests that restart it."""
    _need_binary("restart")
    server = RedisProcess(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
