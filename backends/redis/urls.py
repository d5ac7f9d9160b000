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
sentinels themselves); query options win over keyword options. An option
redis-py would not accept is a `ValidationError` naming it, at once. Ports
default to 6379, and to 26379 for sentinels.

Defaults (each overridable): ``socket_connect_timeout=5`` and
``socket_timeout=5`` seconds, so no call waits without bound on a server that
stopped answering; ``max_connections=100`` per pool (on a cluster: per client,
and per node); when every connection is busy a call waits for one, as long as
the executor's ``timeout`` allows, and ``pool_timeout=`` seconds if given,
then raises `stateful.PoolExhausted` (nothing was sent). The wait has no
limit of its own by default because a burst of calls drains at the store's
pace: a bound shorter than the whole burst would fail calls that a moment
later would have succeeded (10,000 concurrent multi-step cluster writes took
36 s on a loaded 2-core machine). Every call holding a connection is itself
bounded by the socket timeouts. Connections never lose a cancellation (see
`client`).

Retries (override with ``retry=``): a standalone or Sentinel client re-sends a
plain command once, at once, on a new connection, when its connection turns
out to be broken; scripts are re-sent only when their send failed
(`client.execute_command`), never once sent. A cluster client keeps
redis-py's policy, which it needs to follow failovers and resharding, except
that a script, too, is sent again only if its send failed
(`client.BoundedRedisCluster`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from stateful.errors import ValidationError

from .client import (
    CANCEL_SAFE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    BoundedConnectionPool,
    BoundedRedisCluster,
    BoundedSentinelPool,
    CancelSafeSentinelConnection,
    CancelSafeSentinelSSLConnection,
    terminate,
)

Client = Redis | RedisCluster
Closer = Callable[[], Awaitable[None]]

STANDALONE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = STANDALONE_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES

#: Options of our pools, on top of what redis-py's connections accept.
POOL_OPTIONS = ("max_connections", "pool_timeout", "connection_class")


def reconnect_once() -> Retry:
    """Return the retry policy of standalone clients: once, at once, on a broken connection."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def defaults() -> dict[str, Any]:
    """Return the options every client built from a URL starts from (see the module doc)."""
    return {
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "max_connections": DEFAULT_MAX_CONNECTIONS,
        "pool_timeout": DEFAULT_POOL_TIMEOUT,
    }


def client_from_url(url: str, **options: Any) -> tuple[Client, Closer]:
    """Build the client for ``url``; return it and the coroutine function that closes it.

    The closer aborts every socket first (`client.terminate`), so it is quick
    even against a server that stopped answering, and cancelling it leaves no
    connection open.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in STANDALONE_SCHEMES:
        return _standalone_client(url, options)
    if scheme in CLUSTER_SCHEMES:
        return _cluster_client(url, scheme, options)
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_client(url, scheme, options)
    raise ValidationError("url", f"not a Redis URL (schemes: {', '.join(SCHEMES)}): {url!r}")


def _accepted(*constructors: Callable[..., Any]) -> frozenset[str]:
    """Keyword names the constructors accept (a class: every __init__ along its MRO)."""
    names: set[str] = set()
    for constructor in constructors:
        inits: Iterable[Callable[..., Any]] = (
            [vars(k)["__init__"] for k in constructor.__mro__ if "__init__" in vars(k)]
            if isinstance(constructor, type)
            else [constructor]
        )
        for init in inits:
            for name, parameter in inspect.signature(init).parameters.items():
                if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                    names.add(name)
    names.discard("self")
    return frozenset(names)


def _reject_unknown(url: str, given: Iterable[str], known: frozenset[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValidationError(
            "options",
            f"unknown Redis option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} for {url.partition('://')[0]}:// URLs "
            "(see the redis-py client and connection constructors)",
        )


def _pool_timeout(value: Any) -> float | None:
    # From a query string it arrives as text.
    if value is None or value == "None":
        return None
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        raise ValidationError("pool_timeout", f"must be seconds or None, got {value!r}") from None
    if not timeout > 0:
        raise ValidationError("pool_timeout", f"must be positive, got {value!r}")
    return timeout


def _standalone_client(url: str, options: dict[str, Any]) -> tuple[Redis, Closer]:
    kwargs = {**defaults(), "retry": reconnect_once(), **options, **parse_url(url)}
    connection_class: type[AbstractConnection] = kwargs.pop("connection_class", Connection)
    # The one client-level option of redis-py's Redis.from_url.
    single = bool(kwargs.pop("single_connection_client", False))
    _reject_unknown(url, kwargs, _accepted(connection_class) | frozenset(POOL_OPTIONS))
    pool = BoundedConnectionPool(
        connection_class=CANCEL_SAFE.get(connection_class, connection_class),
        max_connections=kwargs.pop("max_connections"),
        pool_timeout=_pool_timeout(kwargs.pop("pool_timeout")),
        **kwargs,
    )
    client = Redis(connection_pool=pool, single_connection_client=single)

    async def close() -> None:
        terminate(client)
        try:
            await client.aclose()
        finally:
            await pool.disconnect()

    return client, close


def _cluster_client(url: str, scheme: str, options: dict[str, Any]) -> tuple[Client, Closer]:
    parts = urlsplit(url)
    userinfo, hosts = _split_netloc(url, parts.netloc)
    if parts.path not in ("", "/", "/0"):
        raise ValidationError("url", f"a Redis Cluster has only database 0, got {url!r}")
    kwargs = {**defaults(), **options, **_connection_kwargs(userinfo, parts.query)}
    kwargs.pop("db", None)
    if scheme.startswith("rediss"):
        kwargs["ssl"] = True
    _reject_unknown(url, kwargs, _accepted(RedisCluster.__init__) | {"pool_timeout"})
    kwargs["pool_timeout"] = _pool_timeout(kwargs["pool_timeout"])
    nodes = [ClusterNode(host, port) for host, port in _addresses(url, hosts, 6379)]
    cluster = BoundedRedisCluster(startup_nodes=nodes, **kwargs)

    async def close() -> None:
        terminate(cluster)
        await cluster.aclose()

    return cluster, close


def _sentinel_client(url: str, scheme: str, options: dict[str, Any]) -> tuple[Redis, Closer]:
    parts = urlsplit(url)
    userinfo, hosts = _split_netloc(url, parts.netloc)
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValidationError(
            "url", f"expected redis+sentinel://host:port[,…]/service_name[/db], got {url!r}"
        )
    kwargs = {**defaults(), "retry": reconnect_once(), **options}
    kwargs.update(_connection_kwargs(userinfo, parts.query))
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValidationError("url", f"the database must be a number, got {path[1]!r}")
        kwargs.setdefault("db", int(path[1]))
    ssl = scheme.startswith("rediss") or bool(kwargs.pop("ssl", False))
    connection_class = CancelSafeSentinelSSLConnection if ssl else CancelSafeSentinelConnection
    sentinel_kwargs = kwargs.pop("sentinel_kwargs", None)
    _reject_unknown(url, kwargs, _accepted(connection_class) | frozenset(POOL_OPTIONS))
    pool_options = {
        "connection_class": kwargs.pop("connection_class", connection_class),
        "max_connections": kwargs.pop("max_connections"),
        "pool_timeout": _pool_timeout(kwargs.pop("pool_timeout")),
    }
    if sentinel_kwargs is None:
        # As redis-py does (the socket options), plus our retry policy: redis-py's
        # default would retry each sentinel with backoff for seconds.
        sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
        sentinel_kwargs["retry"] = reconnect_once()
    # redis-py leaves Sentinel.__init__ unannotated.
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        _addresses(url, hosts, 26379), sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    for client in sentinel.sentinels:
        # Master discovery runs inside our calls: it must keep cancellations too.
        pool = client.connection_pool
        pool.connection_class = CANCEL_SAFE.get(pool.connection_class, pool.connection_class)
    master: Redis = sentinel.master_for(
        path[0], connection_pool_class=BoundedSentinelPool, **pool_options
    )

    async def close() -> None:
        terminate(master)
        for client in sentinel.sentinels:
            terminate(client)
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
