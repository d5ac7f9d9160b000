"""Turn a Redis URL into a redis-py asyncio client, without any I/O.

=========================================================  ==========================
URL                                                        client
=========================================================  ==========================
``redis://[user:pass@]host[:port][/db][?opt=v]``            `redis.asyncio.Redis`
``rediss://…`` (TLS), ``unix:///path/redis.sock[?db=n]``    `redis.asyncio.Redis`
``redis+cluster://[user:pass@]h1:p1[,h2:p2…][?opt=v]``      `redis.asyncio.RedisCluster`
``rediss+cluster://…`` (TLS)                                `redis.asyncio.RedisCluster`
``redis+sentinel://[user:pass@]h1:p1[,h2:p2…]/service[/db]``  master of ``service`` via
``rediss+sentinel://…`` (TLS to the master)                 `redis.asyncio.sentinel.Sentinel`
=========================================================  ==========================

Query options are cast as redis-py casts them (``socket_timeout=0.5``,
``max_connections=50``…); keyword options go to the client constructor
(for a sentinel URL, ``sentinel_kwargs=`` configures the connections to the
sentinels themselves). Ports default to 6379, and to 26379 for sentinels.

Retries (override with ``retry=``): a standalone or Sentinel client re-sends a
command once, at once, on a new connection, when its connection turns out to
be broken (a pooled connection to a server that restarted or failed over);
it never re-sends after a timeout, where the server may still run the first
copy. A cluster client keeps redis-py's policy, which it needs to follow
failovers and resharding. Every script leaves the same state when run twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from stateful.errors import ValidationError

Client = Redis | RedisCluster
Closer = Callable[[], Awaitable[None]]

STANDALONE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = STANDALONE_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES


def reconnect_once() -> Retry:
    """Return the retry policy of standalone clients: once, at once, on a broken connection."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def client_from_url(url: str, **options: Any) -> tuple[Client, Closer]:
    """Build the client for ``url``; return it and the coroutine function that closes it."""
    scheme = url.partition("://")[0].lower()
    if scheme in STANDALONE_SCHEMES:
        client = Redis.from_url(url, **{"retry": reconnect_once(), **options})
        return client, client.aclose
    if scheme in CLUSTER_SCHEMES:
        cluster = _cluster_client(url, scheme, options)
        return cluster, cluster.aclose
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_client(url, scheme, options)
    raise ValidationError("url", f"not a Redis URL (schemes: {', '.join(SCHEMES)}): {url!r}")


def _cluster_client(url: str, scheme: str, options: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    userinfo, hosts = _split_netloc(url, parts.netloc)
    if parts.path not in ("", "/", "/0"):
        raise ValidationError("url", f"a Redis Cluster has only database 0, got {url!r}")
    kwargs = _connection_kwargs(userinfo, parts.query)
    kwargs.pop("db", None)
    if scheme.startswith("rediss"):
        kwargs["ssl"] = True
    kwargs.update(options)
    nodes = [ClusterNode(host, port) for host, port in _addresses(url, hosts, 6379)]
    return RedisCluster(startup_nodes=nodes, **kwargs)


def _sentinel_client(url: str, scheme: str, options: dict[str, Any]) -> tuple[Redis, Closer]:
    parts = urlsplit(url)
    userinfo, hosts = _split_netloc(url, parts.netloc)
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValidationError(
            "url", f"expected redis+sentinel://host:port[,…]/service_name[/db], got {url!r}"
        )
    kwargs = _connection_kwargs(userinfo, parts.query)
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValidationError("url", f"the database must be a number, got {path[1]!r}")
        kwargs.setdefault("db", int(path[1]))
    if scheme.startswith("rediss"):
        kwargs["ssl"] = True
    kwargs.update({"retry": reconnect_once(), **options})
    sentinel_kwargs = kwargs.pop("sentinel_kwargs", None)
    if sentinel_kwargs is None:
        # As redis-py does (the socket options), plus our retry policy: redis-py's
        # default would retry each sentinel with backoff for seconds.
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        sentinel_kwargs["retry"] = reconnect_once()
    # redis-py leaves Sentinel.__init__ unannotated.
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _addresses(url, hosts, 26379), sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    master: Redis = sentinel.master_for(path[0])

    async def close() -> None:
        try:
            await master.aclose()
        finally:
            await sentinel.aclose()

    return master, close


def _split_netloc(url: str, netloc: str) -> tuple[str, str]:
    userinfo, _, hosts = netloc.rpartition("@")
    if not hosts:
        raise ValidationError("url", f"names no host: {url!r}")
    return userinfo, hosts


def _connection_kwargs(userinfo: str, query: str) -> dict[str, Any]:
    """Username, password, db and typed query options, parsed the way redis-py does."""
    auth = f"{userinfo}@" if userinfo else ""
    parsed: dict[str, Any] = dict(parse_url(f"redis://{auth}localhost?{query}"))
    parsed.pop("host", None)
    return parsed


def _addresses(url: str, hosts: str, default_port: int) -> list[tuple[str, int]]:
    addresses = []
    for item in hosts.split(","):
        item = item.strip()
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValidationError("url", f"has an empty host: {url!r}")
        if port_text and not port_text.isdigit():
            raise ValidationError("url", f"has a bad port {port_text!r}: {url!r}")
        addresses.append((unquote(host), int(port_text) if port_text else default_port))
    return addresses
