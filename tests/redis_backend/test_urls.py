"""URL forms: which client each builds, with which settings (no I/O happens)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import SSLConnection

from stateful import ManualClock, ValidationError, connect
from stateful.backends.redis import RedisBackend, from_url
from stateful.backends.redis.urls import client_from_url


async def _built(url: str, **options: Any) -> Any:
    client, close = client_from_url(url, **options)
    await close()
    return client


async def test_standalone_forms() -> None:
    client = await _built("redis://user:p%40ss@h:6380/2?socket_timeout=0.5")
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("h", 6380, 2)
    assert (kwargs["username"], kwargs["password"]) == ("user", "p@ss")
    assert kwargs["socket_timeout"] == 0.5
    unix = await _built("unix:///tmp/redis.sock?db=3")
    assert unix.connection_pool.connection_kwargs["path"] == "/tmp/redis.sock"


async def test_cluster_form() -> None:
    client = await _built("rediss+cluster://u:pw@h1:7000,[::1]:7001,h3?socket_timeout=2")
    assert isinstance(client, RedisCluster)
    nodes = sorted(client.nodes_manager.startup_nodes)
    assert nodes == sorted(["h1:7000", "::1:7001", "h3:6379"])
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("u", "pw")
    assert kwargs["socket_timeout"] == 2.0
    assert issubclass(kwargs["connection_class"], SSLConnection)


async def test_sentinel_form() -> None:
    client = await _built("redis+sentinel://:secret@s1:5000,s2/my-service/4")
    assert isinstance(client, Redis)
    pool: Any = client.connection_pool
    assert pool.service_name == "my-service"
    assert pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["password"] == "secret"
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("s1", 5000), ("s2", 26379)]


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://h1:7000/1",  # a cluster has only db 0
        "redis+cluster://",
        "redis+cluster://h1:port",
        "redis+sentinel://s1:5000",  # no service name
        "redis+sentinel://s1:5000/svc/db",
        "memcached://h",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="url"):
        client_from_url(url)


async def test_connect_routes_every_scheme_here() -> None:
    clock = ManualClock()
    for url in (
        "redis://h",
        "rediss://h",
        "unix:///tmp/r.sock",
        "redis+cluster://h1:7000,h2:7001",
        "redis+sentinel://h:26379/svc",
    ):
        executor = connect(url, clock=clock, prefix="app:")
        backend = executor.backend
        assert isinstance(backend, RedisBackend) and backend.keys.prefix == "app:"
        await executor.aclose()


async def test_options_reach_the_client() -> None:
    backend = from_url("redis://h", max_connections=7, client_name="router")
    kwargs = backend.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert kwargs["client_name"] == "router"
    assert backend.client.connection_pool.max_connections == 7  # type: ignore[union-attr]
    await backend.aclose()
