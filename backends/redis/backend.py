"""`RedisBackend`: the contract on Redis (standalone, Sentinel or Cluster).

Each write and each read that depends on time is one Lua script (``lua/``) run
by EVALSHA, so it is atomic and costs one round trip. Reads that do not depend
on time (permanent links, workload states) are single plain commands. The
batch reads are pipelined in chunks of at most `CHUNK` keys; on a cluster the
chunks are grouped by hash slot, and each node gets its share in one round trip.

Layout (`keys`): one hash per (namespace, uid) holds all its links; a sorted
set per (namespace, service, pod) indexes the uids linked to the pod. On a
standalone server (or Sentinel) the link scripts keep the index in the same
script. On a cluster the index lives in another hash slot, so a write adds
the uid to the new pod's index first, moves the link, then drops it from the
old pod's index: the index can over-report, never under-report, and readers
check every candidate against its link (``docs/redis.md``, "Pod index").

Time: without a clock, each script reads the Redis server's ``TIME`` (at most
once, and the link scripts only when a temporary link or a write needs it),
so app servers with skewed clocks agree, and a hash whose links (or states)
are all temporary carries a native expiry (``PEXPIREAT``) so Redis reclaims it
itself. With a clock, the scripts get ``now`` from it and set no native
expiry, because a foreign clock (a `ManualClock` in tests) may be far from
real time; dead entries are then dropped by the next write to their hash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

from stateful.backend import Backend, Cursor
from stateful.clock import Clock
from stateful.records import LinkInfo
from stateful.resources import resource_dir

from . import errors, scripts
from .client import client_is_cancel_safe
from .keys import DEFAULT_PREFIX, KeyLayout, slot_of
from .upgrade import former_link_keys
from .urls import Client, Closer

logger = logging.getLogger("stateful")

#: Most keys (or hash fields) one batch command carries.
CHUNK = 1000


def _load(name: str, *preludes: str) -> scripts.Script:
    """Load ``lua/<name>.lua`` after its shared preludes (Redis scripts cannot import)."""
    folder = resource_dir("lua")
    parts = [(folder / f"{part}.lua").read_bytes() for part in (*preludes, name)]
    return scripts.Script.from_source(name, b"\n".join(parts))


_SET_LINKED_POD = _load("set_linked_pod", "_links", "_store", "_write")
_TRY_SET_LINKED_POD = _load("try_set_linked_pod", "_links", "_store", "_write")
_SET_LINKED_POD_IF_ABSENT = _load("set_linked_pod_if_absent", "_links", "_store", "_write")
_REMOVE_LINKED_POD = _load("remove_linked_pod", "_links", "_store", "_write")
_GET_LINKED_PODS = _load("get_linked_pods", "_links")
_GET_LINK_INFO = _load("get_link_info", "_links")
_POD_PAGE = _load("pod_page", "_links", "_store")
_COUNT_PODS = _load("count_pods", "_links")
_UPGRADE_LINK = _load("upgrade_link", "_links", "_store", "_write")
_INDEX_ADD = _load("index_add")
#: The error _write.lua gives when a cluster write's first step is too old.
_STALE_STEP = "index step is older than"
_STALE_STEP_ATTEMPTS = 3
_INDEX_DROP = _load("index_drop")
_SET_POD_STATE = _load("set_pod_state", "_states")
_GET_POD_STATES = _load("get_pod_states", "_states")
_REMOVE_POD_STATE = _load("remove_pod_state", "_states")
_SET_STATE = _load("set_state")

#: What a cluster link script replies when the new pod's index must be filled first.
_NEEDS_INDEX = (b"index", "index")


def _text(value: bytes | str) -> str:
    # Our own clients reply bytes; a user's client may decode to str already.
    return value.decode() if isinstance(value, bytes) else value


def _chunks(items: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _pods(reply: bytes | str) -> list[int | None]:
    """Split a `get_linked_pods` reply: one pod (or '': none) per key, joined by ','."""
    parts = reply.split(b",") if isinstance(reply, bytes) else reply.split(",")
    return [int(pod) if pod else None for pod in parts]


def _numbers(reply: bytes | str) -> list[int]:
    """Split the reply of a link writer, ``a,b,moved,t`` (see ``_write.lua``)."""
    parts = reply.split(b",") if isinstance(reply, bytes) else reply.split(",")
    return [int(part) for part in parts]


def _permanent_pod(value: bytes | str | None) -> int | None:
    """Return the pod of a stored link value if the link is permanent (``pod:updated``)."""
    if value is None:
        return None
    pod, _, rest = _text(value).partition(":")
    return None if ":" in rest else int(pod)


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
    #: its connection class (see `client.client_is_cancel_safe`). On a cluster a
    #: write is a few steps (pod index, link, index clean-up): cancelled between
    #: them, the link is before or after and the index only over-reports.
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

    def _batches(self, keys: Sequence[bytes]) -> list[list[int]]:
        """Positions of ``keys`` in chunks of at most `CHUNK`, one hash slot each on a cluster."""
        if not self._cluster:
            return list(_chunks(range(len(keys))))
        by_slot: dict[int, list[int]] = {}
        for position, key in enumerate(keys):
            by_slot.setdefault(slot_of(key), []).append(position)
        return [chunk for group in by_slot.values() for chunk in _chunks(group)]

    async def _write(
        self,
        script: scripts.Script,
        namespace: str,
        uid: str,
        service_name: str,
        target: int | None,
        args: Sequence[scripts.Arg],
        *,
        index_first: bool,
        more_keys: tuple[bytes, ...] = (),
    ) -> list[int]:
        """Run one link-writing script; on a cluster, keep the pod index around it.

        Standalone/Sentinel: one EVALSHA that also updates the index. Cluster:
        (1) `index_add` puts the uid in ``target``'s index — before the script
        when ``index_first`` (`set_linked_pod`: it always links), else only
        when the script replies that it would link the uid to a pod it is not
        live on (then the script runs again); (2) the script; (3)
        `index_drop` takes the uid out of the pod the link left. A crash
        between the steps leaves the index over-reporting, which readers
        tolerate and repair. ``more_keys`` follow the uid's hash in ``KEYS``
        (same hash slot).
        """
        key = self._keys.link_hash(namespace, uid)
        keys = (key, *more_keys) if more_keys else (key,)
        service = service_name.encode()
        member = uid.encode()
        if not self._cluster:
            ix = self._keys.pod_index(namespace, service_name)
            args = (self._now(), service, member, ix, b"", *args)
            return _numbers(await script.run(self._client, keys, args))
        stamp = b""
        if index_first and target is not None:
            stamp = await self._index_add(namespace, service_name, target, member)
        for attempt in range(_STALE_STEP_ATTEMPTS):
            try:
                result = await script.run(
                    self._client, keys, (self._now(), service, member, b"", stamp, *args)
                )
                break
            except ResponseError as exc:
                # Under a long queue the first step may be too old for the
                # second (see _write.lua): nothing changed, so add again and retry.
                if _STALE_STEP not in str(exc) or attempt + 1 == _STALE_STEP_ATTEMPTS:
                    raise
                assert target is not None
                stamp = await self._index_add(namespace, service_name, target, member)
        if result in _NEEDS_INDEX and target is not None:
            stamp = await self._index_add(namespace, service_name, target, member)
            result = await script.run(
                self._client, keys, (self._now(), service, member, b"", stamp, *args)
            )
        reply = _numbers(result)
        moved, seen = reply[2], reply[3]
        if moved >= 0:
            await self._index_drop_quietly(namespace, service_name, moved, seen, [member])
        return reply

    async def _index_add(
        self, namespace: str, service_name: str, pod_id: int, member: bytes
    ) -> bytes:
        reply = await _INDEX_ADD.run(
            self._client,
            self._keys.index_keys(namespace, service_name, pod_id)[:3],
            (member, str(pod_id)),
        )
        return str(int(reply)).encode()

    async def _index_drop(
        self, namespace: str, service_name: str, pod_id: int, seen: Any, members: list[bytes]
    ) -> None:
        for start in range(0, len(members), CHUNK):
            await _INDEX_DROP.run(
                self._client,
                self._keys.index_keys(namespace, service_name, pod_id)[:3],
                (seen, str(pod_id), *members[start : start + CHUNK]),
            )

    async def _index_drop_quietly(
        self, namespace: str, service_name: str, pod_id: int, seen: Any, members: list[bytes]
    ) -> None:
        # The write itself is done: if this clean-up fails, the index only
        # over-reports (readers check and repair it), so the caller gets its answer.
        try:
            await self._index_drop(namespace, service_name, pod_id, seen, members)
        except Exception as exc:
            logger.warning("stateful: pod index clean-up failed (readers repair it): %r", exc)

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite the state of one pod of a service, permanent or for ``ttl_seconds``."""
        key = self._keys.pod_states(namespace, service_name)
        ttl = "" if ttl_seconds is None else str(ttl_seconds)
        await _SET_POD_STATE.run(
            self._client, (key,), (self._now(), str(pod_id), state.encode(), ttl)
        )

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every live pod state of a service."""
        key = self._keys.pod_states(namespace, service_name)
        flat: list[Any] = await _GET_POD_STATES.run(self._client, (key,), (self._now(),))
        return {int(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state; return whether it had a live one."""
        key = self._keys.pod_states(namespace, service_name)
        reply = await _REMOVE_POD_STATE.run(self._client, (key,), (self._now(), str(pod_id)))
        return bool(int(reply))

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
        reply = await self._write(
            _SET_LINKED_POD, namespace, uid, service_name, pod_id,
            (str(pod_id), str(persist_seconds)), index_first=True,
        )
        before = reply[0]
        return None if before < 0 else before

    async def upgrade_former_link(
        self, namespace: str, uid: str, service_name: str, former: bytes
    ) -> int:
        """Move one link of the former layout into the uid's hash (`upgrade`).

        ``former`` is the value its string key held when read: ``pod`` or
        ``pod:expires_ms``. Returns `lua/upgrade_link.lua`'s answer: 1 moved,
        2 a newer link won, 3 it was dead, -2 the string changed since read.
        """
        pod = int(former.partition(b":")[0])
        reply = await self._write(
            _UPGRADE_LINK, namespace, uid, service_name, pod, (former,),
            index_first=True,
            more_keys=former_link_keys(self._keys, namespace, uid, service_name),
        )
        return reply[0]

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        reply = await self._write(
            _TRY_SET_LINKED_POD, namespace, uid, service_name, pod_id,
            (str(pod_id), str(persist_seconds)), index_first=False,
        )
        return bool(reply[0]), reply[1]

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep a live link (refreshing a temporary one) or create one; return its pod."""
        reply = await self._write(
            _SET_LINKED_POD_IF_ABSENT, namespace, uid, service_name, pod_id,
            (str(pod_id), str(persist_seconds)), index_first=False,
        )
        return reply[0]

    async def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        pod_id: int | None,
    ) -> int | None:
        """Atomically keep a live link (as `set_linked_pod_if_absent`) or link to ``pod_id``."""
        reply = await self._write(
            _SET_LINKED_POD_IF_ABSENT, namespace, uid, service_name, pod_id,
            ("" if pod_id is None else str(pod_id), str(persist_seconds)), index_first=False,
        )
        pod = reply[0]
        return None if pod < 0 else pod

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the pod of the live link, or None."""
        key = self._keys.link_hash(namespace, uid)
        pod = await _GET_LINKED_PODS.run(
            self._client, (key,), (self._now(), service_name.encode())
        )
        return int(pod) if pod else None

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the pod of the live link only if it is permanent (a plain HGET).

        A permanent link is live at any time and is stored as ``pod:updated``
        (one colon), so this read needs no clock.
        """
        key = self._keys.link_hash(namespace, uid)
        return _permanent_pod(await self._client.execute_command("HGET", key, service_name))

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the uids that have a live link by pod, each list in input order."""
        pods = await self._live_pods(namespace, uids, service_name)
        grouped: dict[int, list[str]] = {}
        for uid, pod in zip(uids, pods, strict=True):
            if pod is not None:
                grouped.setdefault(pod, []).append(uid)
        return grouped

    async def _live_pods(
        self, namespace: str, uids: Sequence[str], service_name: str
    ) -> list[int | None]:
        """Return the pod of each uid's live link (None: none), read in pipelined chunks."""
        keys = self._keys.link_hashes(namespace, list(uids))
        args = (self._now(), service_name.encode())
        if not self._cluster:
            # Chunks in input order: the replies simply follow one another.
            calls = [(keys[start : start + CHUNK], args) for start in range(0, len(keys), CHUNK)]
            replies = await scripts.run_many(self._client, _GET_LINKED_PODS, calls)
            return [pod for reply in replies for pod in _pods(reply)]
        batches = self._batches(keys)
        replies = await scripts.run_many(
            self._client, _GET_LINKED_PODS, [([keys[i] for i in batch], args) for batch in batches]
        )
        pods: list[int | None] = [None] * len(uids)
        for batch, reply in zip(batches, replies, strict=True):
            for position, pod in zip(batch, _pods(reply), strict=True):
                pods[position] = pod
        return pods

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
        reply = await self._write(
            _REMOVE_LINKED_POD, namespace, uid, service_name, None,
            (str(persist_seconds), pod), index_first=False,
        )
        return bool(reply[0])

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links, service → pod (HGETALL of its hash)."""
        key = self._keys.link_hash(namespace, uid)
        links: dict[Any, Any] = await self._client.execute_command("HGETALL", key)
        found = {_text(service): _permanent_pod(value) for service, value in links.items()}
        return {service: pod for service, pod in found.items() if pod is not None}

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update, or None."""
        key = self._keys.link_hash(namespace, uid)
        reply = await _GET_LINK_INFO.run(
            self._client, (key,), (self._now(), service_name.encode())
        )
        if reply is None:
            return None
        pod, updated, expires = (int(value) for value in reply)
        return LinkInfo(
            namespace, uid, service_name, pod, None if expires < 0 else expires, updated
        )

    # -- pods ----------------------------------------------------------------------

    def _page_args(
        self, namespace: str, service_name: str, pod_id: int, mode: str, after: Cursor,
        limit: int, persist_seconds: int = 0,
    ) -> tuple[scripts.Arg, ...]:
        return (
            self._now(), mode, b"" if after is None else after.encode(), str(limit),
            service_name.encode(), str(pod_id), self._keys.link_head(namespace).encode(),
            self._keys.pod_index(namespace, service_name), str(persist_seconds),
        )

    async def _page(
        self, namespace: str, service_name: str, pod_id: int, mode: str, after: Cursor,
        limit: int, persist_seconds: int = 0,
    ) -> tuple[Cursor, Any, list[Any]]:
        """One `pod_page` call: (next cursor, server time, the rest of the reply)."""
        keys = self._keys.index_keys(namespace, service_name, pod_id)[:1]
        args = self._page_args(
            namespace, service_name, pod_id, mode, after, limit, persist_seconds
        )
        reply: list[Any] = await _POD_PAGE.run(self._client, keys, args)
        cursor = _text(reply[0]) or None
        return cursor, reply[1], reply[2:]

    async def _checked_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Cluster: a page of candidates, checked against their links, stale ones dropped."""
        cursor, seen, candidates = await self._page(
            namespace, service_name, pod_id, "range", after, limit
        )
        uids = [_text(member) for member in candidates]
        pods = await self._live_pods(namespace, uids, service_name) if uids else []
        live = [uid for uid, pod in zip(uids, pods, strict=True) if pod == pod_id]
        stale = [
            member for member, pod in zip(candidates, pods, strict=True) if pod != pod_id
        ]
        if stale:
            # The answer is already right; a failed clean-up only leaves them stale.
            await self._index_drop_quietly(namespace, service_name, pod_id, seen, stale)
        return live, cursor

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Return up to ``limit`` live uids of the pod after ``after``, and the next cursor.

        The cursor is the last uid read from the pod's index (lexical order);
        a page may hold fewer than ``limit`` uids (stale entries are skipped
        and dropped) and still have a next cursor.
        """
        if self._cluster:
            return await self._checked_page(namespace, service_name, pod_id, after, limit)
        cursor, _, uids = await self._page(namespace, service_name, pod_id, "list", after, limit)
        return [_text(uid) for uid in uids], cursor

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod.

        Standalone/Sentinel: one script, index sizes less their dead
        temporary entries (O(log n) per pod). Cluster: each indexed pod's
        index walked and every candidate checked against its link.
        """
        pods_key = self._keys.index_keys(namespace, service_name, 0)[1]
        if not self._cluster:
            flat: list[Any] = await _COUNT_PODS.run(
                self._client, (pods_key,),
                (self._now(), self._keys.pod_index(namespace, service_name)),
            )
            return {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        pods = sorted(
            int(pod) for pod in await self._client.execute_command("SMEMBERS", pods_key)
        )
        counts: dict[int, int] = {}
        for pod in pods:
            total, cursor = 0, None
            while True:
                live, cursor = await self._checked_page(
                    namespace, service_name, pod, cursor, CHUNK
                )
                total += len(live)
                if cursor is None:
                    break
            if total:
                counts[pod] = total
        return counts

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        """Apply `remove_linked_pod_with_id` to a page of the pod's links.

        Standalone/Sentinel: one script reads the page and removes each link
        still at the pod. Cluster: the page's candidates, then their removal
        scripts pipelined by slot, then one `index_drop` (three round trips).
        """
        if not self._cluster:
            cursor, _, rest = await self._page(
                namespace, service_name, pod_id, "remove", after, limit, persist_seconds
            )
            return int(rest[0]), cursor
        cursor, seen, candidates = await self._page(
            namespace, service_name, pod_id, "range", after, limit
        )
        if not candidates:
            return 0, cursor
        keys = self._keys.link_hashes(namespace, [_text(member) for member in candidates])
        service = service_name.encode()
        tail = (str(persist_seconds), str(pod_id))
        replies = await scripts.run_many(
            self._client,
            _REMOVE_LINKED_POD,
            [((key,), (self._now(), service, member, b"", b"", *tail))
             for key, member in zip(keys, candidates, strict=True)],
        )
        numbers = [_numbers(reply) for reply in replies]
        removed = sum(reply[0] for reply in numbers)
        # Out of this pod's index: links deleted here, and candidates whose
        # link was not (or no longer) at the pod.
        gone = [
            member for member, reply in zip(candidates, numbers, strict=True)
            if reply[0] == 0 or reply[2] == pod_id
        ]
        if gone:
            await self._index_drop_quietly(namespace, service_name, pod_id, seen, gone)
        return removed, cursor
