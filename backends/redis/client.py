"""redis-py clients that are safe to cancel, bounded under load and quick to close.

Cancellation. On Python 3.11, ``asyncio.wait_for`` returns the inner result
when the cancellation of the waiting task arrives after the inner work has
finished but before the waiting task resumed (CPython gh-86296, fixed in 3.12
where ``wait_for`` is built on ``asyncio.timeout``). redis-py 8 sends every
command through ``wait_for(…, socket_timeout)`` (``socket_timeout`` defaults to
5 s), so a call cancelled right after its command was written lost the
cancellation: it went on, read its reply and returned normally, and an
``asyncio.timeout`` around it expired without raising. Our connection classes
send under ``asyncio.timeout`` instead, which never loses a cancellation. What
remains is redis-py's own behaviour, which is cancel-safe: a connection
interrupted while sending or reading is disconnected before it goes back to
the pool, so no later call can read the reply of a cancelled one.

Load. redis-py's async pools raise ``MaxConnectionsError`` when every
connection is busy. `BoundedConnectionPool` (standalone, Sentinel) and
`BoundedRedisCluster` (one bound per client) make callers wait for a free
connection instead, at most ``pool_timeout`` seconds if set; a wait that runs out
raises `stateful.PoolExhausted` (nothing was sent). The wait is marked with
`stateful.backend.waiting_for_connection`, so an executor timeout expiring
there is reported as `PoolExhausted` too.

Speed. `execute_command` runs one command of a standalone or Sentinel client
on a connection it takes from our pool itself: the same pool, retry policy
and disconnect-on-interruption as redis-py's ``Redis.execute_command``, minus
its per-call bookkeeping (about 14 µs of CPU per call here).

Closing. `terminate` aborts every socket of a client at once (no goodbye to a
server that may not answer); the backends' ``aclose`` calls it first.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.sentinel import (
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stateful.backend import waiting_for_connection
from stateful.errors import PoolExhausted

#: Connections per pool (standalone, Sentinel) or per cluster client, unless given.
DEFAULT_MAX_CONNECTIONS = 100
#: Seconds a call waits for a free connection before `PoolExhausted` (None: as long as
#: the executor's timeout allows), unless given.
DEFAULT_POOL_TIMEOUT: float | None = None
#: Seconds to open a connection (TCP, TLS and handshake), unless given.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a send or a read may block on an open connection, unless given.
DEFAULT_SOCKET_TIMEOUT = 5.0

# From 3.12 on, wait_for no longer loses cancellations; redis-py's own send is fine.
_WAIT_FOR_IS_SAFE = sys.version_info >= (3, 12)

#: Commands a cluster client sends at most once (see `BoundedRedisCluster`).
_SENT_ONCE = frozenset({"EVALSHA", "EVAL", b"EVALSHA", b"EVAL"})


class _Sends:
    """One cluster call of a script: whether its attempt wrote it; the error that lost a reply."""

    __slots__ = ("lost", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.lost: BaseException | None = None


#: The script call the current task is making on a cluster client, if any.
_SENDS: ContextVar[_Sends | None] = ContextVar("stateful_redis_sends", default=None)


def _mark_sent() -> None:
    sends = _SENDS.get()
    if sends is not None:
        sends.sent = True


class CancelSafeSend(AbstractConnection):
    """Sends under ``asyncio.timeout`` rather than ``asyncio.wait_for`` (see the module doc).

    Also refuses to reconnect once `terminate` dropped it, so a call caught in
    a close fails at once instead of retrying on a new socket.
    """

    dropped = False

    async def _connect(self) -> None:
        if self.dropped:
            raise RedisConnectionError("the client was closed")
        await super()._connect()  # type: ignore[safe-super, no-untyped-call]

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """Write ``command``; on any failure or cancellation drop the connection and raise.

        A connection the server has closed since its last reply (restart,
        failover, kill) is replaced first: a command written into it would
        fail only when its reply is read, and then nobody could tell whether
        it ran.
        """
        reader = self._reader
        if reader is not None and (reader.at_eof() or reader.exception() is not None):
            await self.disconnect(nowait=True)
        timeout = self.socket_timeout
        if _WAIT_FOR_IS_SAFE or not timeout:
            await super().send_packed_command(command, check_health)
            _mark_sent()
            return
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else command
        writer = self._writer
        assert writer is not None  # connected just above
        try:
            writer.writelines(chunks)
            if writer.transport.get_write_buffer_size():
                # Part of the command waits in our buffer: drain may block.
                async with asyncio.timeout(timeout):
                    await writer.drain()
            else:
                # All of it reached the kernel, so drain cannot block (the
                # transport is not paused): no timer needed on the hot path.
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            # Cancelled mid-write: part of the command may be on the wire, so
            # this connection must never carry another command.
            await self.disconnect(nowait=True)
            raise
        _mark_sent()


#: The name redis-core's round-trip test counts sends by.
_CancelSafeSend = CancelSafeSend


class CancelSafeConnection(CancelSafeSend, Connection):
    """TCP connection that never loses a cancellation."""


class CancelSafeSSLConnection(CancelSafeSend, SSLConnection):
    """TLS connection that never loses a cancellation."""


class CancelSafeUnixConnection(CancelSafeSend, UnixDomainSocketConnection):
    """Unix-socket connection that never loses a cancellation."""


class CancelSafeSentinelConnection(CancelSafeSend, SentinelManagedConnection):
    """Connection to a Sentinel-managed master that never loses a cancellation."""


class CancelSafeSentinelSSLConnection(CancelSafeSend, SentinelManagedSSLConnection):
    """TLS connection to a Sentinel-managed master that never loses a cancellation."""


#: redis-py connection class → our cancel-safe version of it.
CANCEL_SAFE: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: CancelSafeConnection,
    SSLConnection: CancelSafeSSLConnection,
    UnixDomainSocketConnection: CancelSafeUnixConnection,
    SentinelManagedConnection: CancelSafeSentinelConnection,
    SentinelManagedSSLConnection: CancelSafeSentinelSSLConnection,
}


def is_cancel_safe(connection_class: type[AbstractConnection]) -> bool:
    """Tell whether connections of this class keep every cancellation."""
    return _WAIT_FOR_IS_SAFE or issubclass(connection_class, CancelSafeSend)


class Slots:
    """A bounded number of connections that callers wait for, at most ``timeout`` s.

    An `asyncio.Semaphore` with the wait marked for the executor and turned
    into `PoolExhausted` when it runs out.

    `release_soon` hands a slot back only once the releasing task yields to
    the event loop: a task that sends its next command straight away (the
    steps of one cluster write) keeps its slot instead of queueing again
    behind every waiter, which under a burst would stretch one operation over
    the whole burst.
    """

    __slots__ = ("_kept", "_semaphore", "limit", "timeout")

    def __init__(self, limit: int, timeout: float | None) -> None:
        """Allow ``limit`` holders; wait at most ``timeout`` seconds (None: no own limit)."""
        self.limit = limit
        self.timeout = timeout
        self._semaphore = asyncio.Semaphore(limit)
        # Task → the scheduled release of the slot it just gave back.
        self._kept: dict[asyncio.Task[Any], asyncio.Handle] = {}

    @property
    def free(self) -> int:
        """How many slots are free now (nobody waits while one is)."""
        return self._semaphore._value  # Semaphore exposes no counter

    async def acquire(self) -> None:
        """Take a slot, waiting if none is free; `PoolExhausted` if the wait runs out."""
        if self._kept:
            task = asyncio.current_task()
            kept = self._kept.pop(task, None) if task is not None else None
            if kept is not None:
                kept.cancel()  # still ours: keep it
                return
        semaphore = self._semaphore
        if not semaphore.locked():
            # Fast path: Semaphore.acquire does not suspend when a slot is free.
            await semaphore.acquire()
            return
        with waiting_for_connection():
            try:
                async with asyncio.timeout(self.timeout):
                    await semaphore.acquire()
            except TimeoutError:
                raise PoolExhausted(
                    f"Redis pool exhausted: all {self.limit} connections stayed busy for "
                    f"{self.timeout} s (pool_timeout); nothing was sent"
                ) from None

    def release(self) -> None:
        """Give a slot back."""
        self._semaphore.release()

    def release_soon(self) -> None:
        """Give a slot back once this task yields, unless it takes a slot again first."""
        task = asyncio.current_task()
        if task is None or task in self._kept:
            self._semaphore.release()
            return
        self._kept[task] = asyncio.get_running_loop().call_soon(self._give_back, task)

    def _give_back(self, task: asyncio.Task[Any]) -> None:
        if self._kept.pop(task, None) is not None:
            self._semaphore.release()


class _Bounded(ConnectionPool):
    """A pool whose callers wait (bounded) for a connection instead of failing."""

    def __init__(self, *args: Any, pool_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = Slots(self.max_connections, pool_timeout)
        #: Set by `terminate`: no more connections are handed out.
        self.dropped = False

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        """Wait for a free slot, then return a connected connection (see `Slots`)."""
        if self.dropped:
            raise RedisConnectionError("the client was closed")
        await self.slots.acquire()
        try:
            # Synchronous: nothing can interrupt the bookkeeping.
            connection: AbstractConnection = self.get_available_connection()  # type: ignore[no-untyped-call]
        except BaseException:
            self.slots.release()
            raise
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        """Connect ``connection``, reconnecting it if the server closed it while pooled.

        redis-py 8 skips this check whenever maintenance notifications are
        "auto" (its default), so a connection a restarted server closed would
        carry a command into a dead socket; we never re-send a command once
        sent (see `execute_command`), so it must be caught here.
        """
        await connection.connect()  # type: ignore[no-untyped-call]
        try:
            dirty = await connection.can_read()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            dirty = True
        if dirty:
            await connection.disconnect()
            await connection.connect()  # type: ignore[no-untyped-call]

    async def release(self, connection: AbstractConnection) -> None:
        """Return ``connection`` to the pool and its slot to the waiters."""
        try:
            await super().release(connection)
        finally:
            self.slots.release()


class BoundedConnectionPool(_Bounded, ConnectionPool):
    """Standalone pool: at most ``max_connections``, callers wait ``pool_timeout`` s."""


class BoundedSentinelPool(_Bounded, SentinelConnectionPool):
    """Sentinel master pool: at most ``max_connections``, callers wait ``pool_timeout`` s."""


class ScriptOutcomeUnknown(RedisConnectionError):
    """A cluster script's connection broke once it was sent: it may or may not have run."""


class BoundedRedisCluster(RedisCluster):
    """A `RedisCluster` whose callers wait (bounded) for a connection instead of failing.

    At most ``max_connections`` commands or pipelines run at once on this
    client; each uses at most one connection per node, so no node ever needs
    more than ``max_connections`` and none raises ``MaxConnectionsError``.
    Connections are cancel-safe (see the module doc).

    A script is sent at most once, as on the standalone client: redis-py
    retries a command whose connection broke, to follow a failover, but a
    script whose connection broke after it was written may have run (and
    replicated) before its master died; run again on the promoted replica, it
    would answer for its second run (``set_linked_pod`` reporting its own pod
    as the previous one). Such a call raises `ScriptOutcomeUnknown`
    instead; one whose send failed is retried as redis-py would.
    """

    def __init__(self, *args: Any, pool_timeout: float | None = None, **kwargs: Any) -> None:
        """As `RedisCluster`, plus ``pool_timeout``: the most seconds a caller waits."""
        super().__init__(*args, **kwargs)
        options = self.nodes_manager.connection_kwargs
        safe = CANCEL_SAFE.get(options.get("connection_class", Connection))
        if safe is not None:
            options["connection_class"] = safe
            for node in self.nodes_manager.startup_nodes.values():
                node.connection_class = safe  # type: ignore[assignment]
        limit = int(options.get("max_connections", DEFAULT_MAX_CONNECTIONS))
        self.slots = Slots(limit, pool_timeout)
        #: Set by `terminate`: no more attempts, no retries on new connections.
        self.dropped = False

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run one command once a slot is free (see `Slots`); a script at most once."""
        if self.dropped:
            raise RedisConnectionError("the client was closed")
        if args[0] in _SENT_ONCE:
            token = _SENDS.set(_Sends())
            try:
                return await self._execute_in_slot(*args, **kwargs)
            finally:
                _SENDS.reset(token)
        return await self._execute_in_slot(*args, **kwargs)

    async def _execute_in_slot(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            # Discover the cluster once, before any command of a burst runs:
            # redis-py otherwise resolves command policies and slots against
            # half-initialised nodes while the discovery replaces them, and the
            # connections it drops fail those commands, which triggers another
            # discovery (observed: a cascade of "Connection closed by server"
            # and retried writes under 10,000 concurrent calls).
            await self.initialize()
        await self.slots.acquire()
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self.slots.release_soon()

    async def _execute_command(self, target_node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        # Each attempt of redis-py's retry loop: a closed client stops retrying,
        # and a script whose reply was lost is not sent again.
        if self.dropped:
            raise RedisConnectionError("the client was closed")
        sends = _SENDS.get()
        if sends is None:
            return await super()._execute_command(target_node, *args, **kwargs)
        if sends.lost is not None:
            raise ScriptOutcomeUnknown(
                "the connection broke after the script was sent: it may have run, "
                "so it is not sent again"
            ) from sends.lost
        sends.sent = False
        try:
            return await super()._execute_command(target_node, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # An ASKING sent before the script counts too: unknown, never twice.
            if sends.sent:
                sends.lost = exc
            raise

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        """Return a pipeline that runs once a slot is free."""
        if shard_hint or transaction:
            return super().pipeline(transaction, shard_hint)
        # mypy sees ClusterPipeline as abstract; redis-py instantiates it the same way.
        return _BoundedClusterPipeline(self, transaction)  # type: ignore[abstract]


class _BoundedClusterPipeline(ClusterPipeline):
    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, BoundedRedisCluster)
        await client.slots.acquire()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        finally:
            client.slots.release_soon()


def _connections(client: Redis | RedisCluster) -> Iterator[AbstractConnection]:
    if isinstance(client, RedisCluster):
        nodes: dict[str, ClusterNode] = {}
        manager = client.nodes_manager
        nodes.update(manager.startup_nodes)
        nodes.update(manager.nodes_cache)
        for node in nodes.values():
            yield from node._connections  # no public list
        return
    pool = client.connection_pool
    yield from list(pool._available_connections)
    yield from list(pool._in_use_connections)


def terminate(client: Redis | RedisCluster) -> None:
    """Abort every socket of ``client`` now, without waiting for the server.

    Calls in flight on those sockets fail at once; connections, pools and
    cluster clients of this module then refuse to reconnect or retry.
    """
    if isinstance(client, BoundedRedisCluster):
        client.dropped = True
    elif not isinstance(client, RedisCluster) and isinstance(client.connection_pool, _Bounded):
        client.connection_pool.dropped = True
    for connection in _connections(client):
        if isinstance(connection, CancelSafeSend):
            connection.dropped = True
        writer = connection._writer  # no public handle on the transport
        if writer is not None:
            writer.transport.abort()


def client_is_cancel_safe(client: Redis | RedisCluster) -> bool:
    """Tell whether every connection ``client`` opens keeps its cancellations."""
    if isinstance(client, RedisCluster):
        connection_class = client.nodes_manager.connection_kwargs.get(
            "connection_class", Connection
        )
    else:
        connection_class = client.connection_pool.connection_class
    return is_cancel_safe(connection_class)


def _own_pool(client: Any) -> _Bounded | None:
    """Return the pool of a standalone or Sentinel client whose commands we run ourselves."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, _Bounded) and isinstance(client, Redis) and client.connection is None:
        return pool
    return None


async def execute_command(client: Any, *args: Any) -> Any:
    """Send one command and return its reply, as ``client.execute_command(*args)`` would.

    On a standalone or Sentinel client whose pool is ours, and for a command
    without a response callback, the command runs on a connection taken from
    the pool here. It is sent a second time, on a new connection, only if
    the first send failed: the server then got no whole command. Once sent,
    it is never sent again: a connection lost while waiting for the reply
    (CLIENT KILL, a restart) may have run the script already, and running a
    write twice would answer for the second run (``set_linked_pod`` would
    report its own pod as the previous one). That is `BackendUnavailable`,
    outcome unknown. Any other client (a cluster, a client you built) gets
    ``client.execute_command``.
    """
    pool = _own_pool(client)
    if pool is None or args[0] in client.response_callbacks:
        return await client.execute_command(*args)
    connection = await pool.get_connection()
    try:
        packed = _pack(connection, args)
        try:
            await connection.send_packed_command(packed)
        except RedisConnectionError:
            # The pool checked this connection at checkout, so it broke just
            # now; the send failed, so nothing ran. One more try, reconnected.
            await connection.disconnect()
            await connection.send_packed_command(packed)
        return await connection.read_response()
    finally:
        await pool.release(connection)


async def execute_many(client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one write and return their replies in order.

    A reply that is an error comes back as its `ResponseError` instance (as
    in a non-transactional pipeline with ``raise_on_error=False``); a lost
    connection raises. On a standalone or Sentinel client whose pool is ours
    (and commands without response callbacks), this is `execute_command`
    for many commands: one connection, our packer, the send retried once
    only if it failed, every reply read before the connection goes back (an
    interrupted read drops it). Any other client gets a redis-py pipeline.
    """
    pool = _own_pool(client)
    if pool is None or any(command[0] in client.response_callbacks for command in commands):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
    connection = await pool.get_connection()
    try:
        chunks: list[bytes] = []
        for command in commands:
            packed = _pack(connection, command)
            if isinstance(packed, bytes):
                chunks.append(packed)
            else:
                chunks.extend(packed)
        try:
            await connection.send_packed_command(chunks)
        except RedisConnectionError:
            # As in execute_command: the send failed, so nothing ran.
            await connection.disconnect()
            await connection.send_packed_command(chunks)
        replies = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
    finally:
        await pool.release(connection)


def _pack(connection: AbstractConnection, args: tuple[Any, ...]) -> bytes | list[bytes]:
    """Encode ``args`` as one RESP command, as ``connection.pack_command`` would.

    About 4x cheaper than redis-py's general packer for what our scripts send
    (bytes, str, int, a one-word command name, UTF-8); anything else goes to
    ``pack_command``.
    """
    encoder = connection.encoder
    if encoder.encoding != "utf-8" or encoder.encoding_errors != "strict":
        return connection.pack_command(*args)
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            value = arg
        elif kind is str:
            if arg is args[0] and " " in arg:
                return connection.pack_command(*args)  # "CONFIG GET"-style names
            value = arg.encode()
        elif kind is int:
            value = b"%d" % arg
        else:
            return connection.pack_command(*args)
        parts.append(b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(parts)
