"""`RedisBackend`: the contract on Redis (standalone, Sentinel or Cluster).

Each write and each read that depends on time is one Lua script (``lua/``) run
by EVALSHA, so it is atomic and costs one round trip. Reads that do not depend
on time (states, permanent links) are single plain commands. The two batch
reads are pipelined in chunks of at most `CHUNK` keys; on a cluster the chunks
are grouped by hash slot, and each node gets its share in one round trip.

Time: without a clock, each script reads the Redis server's ``TIME`` (once),
so app servers with skewed clocks agree, and temporary links carry a native
expiry (``PXAT``) so Redis reclaims them itself. With a clock, the scripts get
``now`` from it and set no native expiry, because a foreign clock (a
`ManualClock` in tests) may be far from real time; dead links are then
overwritten or reclaimed by the next write to them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from redis.asyncio import Redis, RedisCluster

from stateful.backend import Backend
from stateful.clock import Clock

from . import errors, scripts
from .client import client_is_cancel_safe
from .keys import DEFAULT_PREFIX, KeyLayout, slot_of
from .urls import Client, Closer

#: Most keys (or hash fields) one batch command carries.
CHUNK = 1000

_LINKS = "_links"  # now, live, live_link, store: shared by the link scripts
_SET_LINKED_POD = scripts.load("set_linked_pod", prelude=_LINKS)
_TRY_SET_LINKED_POD = scripts.load("try_set_linked_pod", prelude=_LINKS)
_SET_LINKED_POD_IF_ABSENT = scripts.load("set_linked_pod_if_absent", prelude=_LINKS)
_REMOVE_LINKED_POD = scripts.load("remove_linked_pod", prelude=_LINKS)
_GET_LINKED_PODS = scripts.load("get_linked_pods", prelude=_LINKS)
_SET_STATE = scripts.load("set_state")


def _text(value: bytes | str) -> str:
    # Our own clients reply bytes; a user's client may decode to str already.
    return value.decode() if isinstance(value, bytes) else value


def _chunks(items: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class RedisBackend(Backend):
    """Stores links and states in Redis through a `redis.asyncio` client.

    ``client`` is a `redis.asyncio.Redis` (standalone or Sentinel-managed) or
    `redis.asyncio.RedisCluster`; a client passed in here stays the caller's
    to close. ``prefix`` starts every key (no braces). ``clock`` replaces the
    Redis server's clock (see the module documentation). Nothing touches the
    network before the first call.
    """

    unavailable_errors = errors.UNAVAILABLE_ERRORS
    #: Each write is one atomic script and redis-py drops a connection
    #: interrupted mid-command, so a cancellation leaves the store before or
    #: after and the pool clean. redis-py's own connections may lose a
    #: cancellation on Python 3.11 (`client` explains why); the clients built
    #: from a URL use connections that do not, so their backends are cancel-safe
    #: and the executor awaits them directly. A client you pass in is judged by
    #: its connection class (see `client.client_is_cancel_safe`).
    cancel_safe = False

    def __init__(
        self, client: Client, *, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None
    ) -> None:
        """Use ``client`` with keys under ``prefix``; time from ``clock`` or the server."""
        if not isinstance(client, Redis | RedisCluster):
            raise TypeError(
                "client must be a redis.asyncio.Redis or RedisCluster, "
                f"not {type(client).__name__}"
            )
        self._client = client
        self._keys = KeyLayout(prefix)
        self._clock = clock
        self._cluster = isinstance(client, RedisCluster)
        self._closer: Closer | None = None
        self.cancel_safe = client_is_cancel_safe(client)

    @classmethod
    def owning(
        cls, client: Client, closer: Closer, *, prefix: str = DEFAULT_PREFIX,
        clock: Clock | None = None,
    ) -> RedisBackend:
        """Build a backend that owns ``client``: `aclose` awaits ``closer()``."""
        backend = cls(client, prefix=prefix, clock=clock)
        backend._closer = closer
        return backend

    @property
    def client(self) -> Client:
        """The redis-py client in use."""
        return self._client

    @property
    def keys(self) -> KeyLayout:
        """The key layout (prefix and encoding) of this store."""
        return self._keys

    def __repr__(self) -> str:
        return (
            f"RedisBackend({type(self._client).__name__}, prefix={self._keys.prefix!r}, "
            f"clock={self._clock!r})"
        )

    def is_unavailable(self, error: BaseException) -> bool:
        """Tell whether ``error`` means Redis could not be reached (outcome unknown)."""
        return errors.is_unavailable(error)

    async def aclose(self) -> None:
        """Close the client if this backend created it; safe to call twice."""
        closer, self._closer = self._closer, None
        if closer is not None:
            await closer()

    # -- plumbing ------------------------------------------------------------------

    def _now(self) -> str:
        # '' tells the scripts to read the server's TIME themselves.
        return "" if self._clock is None else str(self._clock.now_ms())

    def _link_keys(self, namespace: str, uid: str, service_name: str) -> tuple[bytes, bytes]:
        return (
            self._keys.link(namespace, uid, service_name),
            self._keys.permanent_links(namespace, uid),
        )

    def _batches(self, keys: Sequence[bytes]) -> list[list[int]]:
        """Positions of ``keys`` in chunks of at most `CHUNK`, one hash slot each on a cluster."""
        if not self._cluster:
            return list(_chunks(range(len(keys))))
        by_slot: dict[int, list[int]] = {}
        for position, key in enumerate(keys):
            by_slot.setdefault(slot_of(key), []).append(position)
        return [chunk for group in by_slot.values() for chunk in _chunks(group)]

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self, namespace: str, service_name: str, pod_id: int, state: str
    ) -> None:
        """Overwrite the state of one pod of a service."""
        key = self._keys.pod_states(namespace, service_name)
        await _SET_STATE.run(self._client, (key,), (str(pod_id), state.encode()))

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every pod state of a service (HGETALL)."""
        key = self._keys.pod_states(namespace, service_name)
        states: dict[Any, Any] = await self._client.execute_command("HGETALL", key)
        return {int(pod): _text(state) for pod, state in states.items()}

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite the workload state of a service."""
        key = self._keys.workload_states(namespace)
        await _SET_STATE.run(self._client, (key,), (service_name.encode(), state.encode()))

    async def get_workload_state(
        self, namespace: str, service_names: list[str]
    ) -> dict[str, str]:
        """Return the workload state of each listed service that has one (HMGET chunks)."""
        key = self._keys.workload_states(namespace)
        fields = [name.encode() for name in service_names]
        commands: list[tuple[scripts.Arg, ...]] = [
            ("HMGET", key, *fields[start : start + CHUNK])
            for start in range(0, len(fields), CHUNK)
        ]
        replies = await scripts.pipelined(self._client, commands)
        values = [value for reply in replies for value in reply]
        return {
            name: _text(value)
            for name, value in zip(service_names, values, strict=True)
            if value is not None
        }

    # -- links ---------------------------------------------------------------------

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link the uid to ``pod_id``; return the pod of the live link before, or None."""
        reply = await _SET_LINKED_POD.run(
            self._client,
            self._link_keys(namespace, uid, service_name),
            (self._now(), service_name.encode(), str(pod_id), str(persist_seconds)),
        )
        return None if reply is None else int(reply)

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        linked, pod = await _TRY_SET_LINKED_POD.run(
            self._client,
            self._link_keys(namespace, uid, service_name),
            (self._now(), service_name.encode(), str(pod_id), str(persist_seconds)),
        )
        return bool(int(linked)), int(pod)

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep a live link (refreshing a temporary one) or create one; return its pod."""
        reply = await _SET_LINKED_POD_IF_ABSENT.run(
            self._client,
            self._link_keys(namespace, uid, service_name),
            (self._now(), service_name.encode(), str(pod_id), str(persist_seconds)),
        )
        return int(reply)

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the pod of the live link, or None."""
        key = self._keys.link(namespace, uid, service_name)
        (pod,) = await _GET_LINKED_PODS.run(self._client, (key,), (self._now(),))
        return None if pod is None else int(pod)

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the pod of the live link only if it is permanent (a plain GET).

        A permanent link is live at any time and is stored as the bare pod id,
        so this read needs no clock.
        """
        key = self._keys.link(namespace, uid, service_name)
        value = await self._client.execute_command("GET", key)
        if value is None:
            return None
        text = _text(value)
        return None if ":" in text else int(text)

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the uids that have a live link by pod, each list in input order."""
        keys = self._keys.links(namespace, uids, service_name)
        batches = self._batches(keys)
        now = self._now()
        replies = await scripts.run_many(
            self._client,
            _GET_LINKED_PODS,
            [([keys[i] for i in batch], (now,)) for batch in batches],
        )
        pods: list[int | None] = [None] * len(uids)
        for batch, reply in zip(batches, replies, strict=True):
            for position, pod in zip(batch, reply, strict=True):
                pods[position] = None if pod is None else int(pod)
        grouped: dict[int, list[str]] = {}
        for uid, pod in zip(uids, pods, strict=True):
            if pod is not None:
                grouped.setdefault(pod, []).append(uid)
        return grouped

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link (or keep it N s as temporary); False if there was none."""
        return await self._remove(namespace, uid, service_name, persist_seconds, "")

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """As `remove_linked_pod`, but only if the live link points at ``pod_id``."""
        return await self._remove(namespace, uid, service_name, persist_seconds, str(pod_id))

    async def _remove(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod: str
    ) -> bool:
        reply = await _REMOVE_LINKED_POD.run(
            self._client,
            self._link_keys(namespace, uid, service_name),
            (self._now(), service_name.encode(), str(persist_seconds), pod),
        )
        return bool(int(reply))

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links, service → pod (HGETALL)."""
        key = self._keys.permanent_links(namespace, uid)
        links: dict[Any, Any] = await self._client.execute_command("HGETALL", key)
        return {_text(service): int(pod) for service, pod in links.items()}
