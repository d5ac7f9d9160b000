"""In-memory backend (``memory://``): for tests and single-process use.

Every operation runs without an ``await`` inside, so under asyncio each one
is atomic by construction. Expired links are dropped lazily: a min-heap of
expiry instants is popped on each call, so no call scans all links, and every
link still in the dictionaries is live. The one exception is the hot read,
`get_linked_pod`, which pops nothing and judges the one link it finds by its
own expiry.

`instant_links` hands the link read and write to the executor as plain
functions, so a router's calls skip two coroutine layers.

A reverse index per (namespace, service, pod) serves `pod_links_page` and
`count_pod_links`. Each entry carries the sequence number the uid got when it
joined the pod; pages walk entries in that order from a cursor (the last
sequence number seen), so a uid that stays on the pod keeps its place and
comes exactly once.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from stateful.backend import Backend, Cursor, InstantLinks
from stateful.clock import Clock, SystemClock
from stateful.errors import ValidationError
from stateful.records import LinkInfo
from stateful.validation import PERMANENT

LinkKey = tuple[str, str, str]  # namespace, uid, service
ServiceKey = tuple[str, str]  # namespace, service


@dataclass(slots=True)
class _Link:
    pod: int
    expires_at: int | None  # milliseconds; None = permanent
    updated_at: int


@dataclass(slots=True)
class _PodMembers:
    """The uids linked to one pod: uid → sequence number, plus that order for paging.

    ``order`` holds (sequence, uid) pairs in increasing sequence; pairs of uids
    that left (or re-joined with a newer number) stay until `compact`.
    """

    members: dict[str, int] = field(default_factory=dict)
    order: list[tuple[int, str]] = field(default_factory=list)

    def add(self, uid: str, sequence: int) -> None:
        self.members[uid] = sequence
        self.order.append((sequence, uid))

    def discard(self, uid: str) -> None:
        self.members.pop(uid, None)
        if len(self.order) > 64 and len(self.order) > 2 * len(self.members):
            # Dict order is join order, so this keeps every cursor valid.
            self.order = [(seq, member) for member, seq in self.members.items()]

    def page(self, after: int, limit: int) -> tuple[list[str], int | None]:
        start = bisect.bisect_right(self.order, after, key=lambda entry: entry[0])
        uids: list[str] = []
        last = after
        for position in range(start, len(self.order)):
            sequence, uid = self.order[position]
            last = sequence
            if self.members.get(uid) == sequence:
                uids.append(uid)
                if len(uids) == limit:
                    more = position + 1 < len(self.order)
                    return uids, last if more else None
        return uids, None


class MemoryBackend(Backend):
    """Keeps everything in dictionaries of this process."""

    cancel_safe = True  # no await inside any operation: it cannot be interrupted

    def __init__(self, *, clock: Clock | None = None) -> None:
        """Create an empty store that reads time from ``clock`` (default: system clock)."""
        self._clock: Clock = clock or SystemClock()
        self._links: dict[LinkKey, _Link] = {}
        self._services_of_uid: dict[tuple[str, str], set[str]] = {}
        self._pods: dict[ServiceKey, dict[int, _PodMembers]] = {}
        # pod → (state, expires_at or None); expired entries are dropped when met.
        self._pod_states: dict[ServiceKey, dict[int, tuple[str, int | None]]] = {}
        self._workload_states: dict[ServiceKey, str] = {}
        # (expires_at, tie-breaker, key, link); entries of replaced links stay
        # until popped or until the heap is rebuilt (see _schedule).
        self._expiries: list[tuple[int, int, LinkKey, _Link]] = []
        self._sequence = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryBackend(clock={self._clock!r})"

    # -- link bookkeeping ----------------------------------------------------------

    def _now(self) -> int:
        now = self._clock.now_ms()
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, _, key, link = heapq.heappop(heap)
            if self._links.get(key) is link:
                self._delete(key)
        return now

    def _store(
        self, key: LinkKey, pod: int, persist_seconds: int, now: int, old: _Link | None
    ) -> None:
        expires_at = None if persist_seconds == PERMANENT else now + persist_seconds * 1000
        if old is not None and old.pod == pod and old.expires_at is None and expires_at is None:
            # A permanent link set again to its pod (a router's common write):
            # nothing moves and no expiry entry points at it, so touch it in place.
            old.updated_at = now
            return
        link = _Link(pod, expires_at, now)
        self._links[key] = link
        namespace, uid, service = key
        if old is None:
            self._services_of_uid.setdefault((namespace, uid), set()).add(service)
        if old is None or old.pod != pod:
            pods = self._pods.setdefault((namespace, service), {})
            if old is not None:
                self._leave(pods, old.pod, uid)
            pods.setdefault(pod, _PodMembers()).add(uid, next(self._sequence))
        if expires_at is not None:
            self._schedule(key, link)

    def _schedule(self, key: LinkKey, link: _Link) -> None:
        assert link.expires_at is not None
        heapq.heappush(self._expiries, (link.expires_at, next(self._sequence), key, link))
        # Links refreshed over and over leave stale entries; rebuild when they dominate.
        if len(self._expiries) > 64 and len(self._expiries) > 2 * len(self._links):
            self._expiries = [
                (lk.expires_at, next(self._sequence), k, lk)
                for k, lk in self._links.items()
                if lk.expires_at is not None
            ]
            heapq.heapify(self._expiries)

    def _delete(self, key: LinkKey) -> None:
        link = self._links.pop(key)
        namespace, uid, service = key
        services = self._services_of_uid[(namespace, uid)]
        services.discard(service)
        if not services:
            del self._services_of_uid[(namespace, uid)]
        pods = self._pods[(namespace, service)]
        self._leave(pods, link.pod, uid)
        if not pods:
            del self._pods[(namespace, service)]

    @staticmethod
    def _leave(pods: dict[int, _PodMembers], pod: int, uid: str) -> None:
        members = pods[pod]
        members.discard(uid)
        if not members.members:
            del pods[pod]

    # -- pod and workload states ------------------------------------------------

    def _live_states(self, namespace: str, service_name: str) -> dict[int, tuple[str, int | None]]:
        states = self._pod_states.get((namespace, service_name))
        if not states:
            return {}
        now = self._clock.now_ms()
        dead = [pod for pod, (_, until) in states.items() if until is not None and now >= until]
        for pod in dead:
            del states[pod]
        return states

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite the state of one pod of a service, permanent or for ``ttl_seconds``."""
        expires = None if ttl_seconds is None else self._clock.now_ms() + ttl_seconds * 1000
        self._pod_states.setdefault((namespace, service_name), {})[pod_id] = (state, expires)

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every live pod state of a service."""
        states = self._live_states(namespace, service_name)
        return {pod: state for pod, (state, _) in states.items()}

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state; return whether it had a live one."""
        return self._live_states(namespace, service_name).pop(pod_id, None) is not None

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite the workload state of a service."""
        self._workload_states[(namespace, service_name)] = state

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""
        states = self._workload_states
        return {
            name: states[(namespace, name)] for name in service_names if (namespace, name) in states
        }

    # -- links ---------------------------------------------------------------------

    def instant_links(self) -> InstantLinks | None:
        """Return the link read and write as plain calls: nothing here ever waits.

        None for a subclass that overrides either coroutine: its version is the truth.
        """
        kind = type(self)
        if (
            kind.get_linked_pod is not MemoryBackend.get_linked_pod
            or kind.set_linked_pod is not MemoryBackend.set_linked_pod
        ):
            return None
        return InstantLinks(get_linked_pod=self._get_pod, set_linked_pod=self._set_link)

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link the uid; return the previous live pod."""
        return self._set_link(namespace, uid, service_name, pod_id, persist_seconds)

    def _set_link(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        now, key = self._now(), (namespace, uid, service_name)
        previous = self._links.get(key)
        self._store(key, pod_id, persist_seconds, now, previous)
        return previous.pod if previous else None

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        now, key = self._now(), (namespace, uid, service_name)
        current = self._links.get(key)
        if current and current.expires_at is None and current.pod != pod_id:
            return False, current.pod
        self._store(key, pod_id, persist_seconds, now, current)
        return True, pod_id

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing a temporary link) or create the link; return its pod."""
        return self._keep_or_link((namespace, uid, service_name), pod_id, persist_seconds)

    def _keep_or_link(self, key: LinkKey, pod_id: int, persist_seconds: int) -> int:
        now = self._now()
        current = self._links.get(key)
        if current is None:
            self._store(key, pod_id, persist_seconds, now, None)
            return pod_id
        if current.expires_at is not None:
            self._store(key, current.pod, persist_seconds, now, current)
        return current.pod

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod."""
        return self._get_pod(namespace, uid, service_name)

    def _get_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        # The hot read: a permanent link needs no clock, and a dead link left
        # for _now() to drop is judged here by its own expiry.
        link = self._links.get((namespace, uid, service_name))
        if link is None:
            return None
        expires_at = link.expires_at
        if expires_at is None or self._clock.now_ms() < expires_at:
            return link.pod
        return None

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the live link's pod if the link is permanent."""
        self._now()
        link = self._links.get((namespace, uid, service_name))
        return link.pod if link and link.expires_at is None else None

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the linked uids by pod."""
        self._now()
        links = self._links
        grouped: dict[int, list[str]] = {}
        for uid in uids:
            link = links.get((namespace, uid, service_name))
            if link:
                grouped.setdefault(link.pod, []).append(uid)
        return grouped

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link or turn it into a temporary one."""
        return self._remove((namespace, uid, service_name), persist_seconds, None)

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """Remove the live link if it points at ``pod_id``."""
        return self._remove((namespace, uid, service_name), persist_seconds, pod_id)

    def _remove(self, key: LinkKey, persist_seconds: int, pod_id: int | None) -> bool:
        now = self._now()
        current = self._links.get(key)
        if current is None or (pod_id is not None and current.pod != pod_id):
            return False
        if persist_seconds > 0:
            self._store(key, current.pod, persist_seconds, now, current)
        else:
            self._delete(key)
        return True

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links."""
        self._now()
        result: dict[str, int] = {}
        for service in self._services_of_uid.get((namespace, uid), ()):
            link = self._links[(namespace, uid, service)]
            if link.expires_at is None:
                result[service] = link.pod
        return result

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update."""
        self._now()
        link = self._links.get((namespace, uid, service_name))
        if link is None:
            return None
        return LinkInfo(namespace, uid, service_name, link.pod, link.expires_at, link.updated_at)

    # -- pods ----------------------------------------------------------------------

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Return up to ``limit`` uids of the pod after the cursor, in the order they joined."""
        self._now()
        members = self._pods.get((namespace, service_name), {}).get(pod_id)
        if members is None:
            return [], None
        uids, last = members.page(-1 if after is None else int(after), limit)
        return uids, None if last is None else str(last)

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod of the service."""
        self._now()
        pods = self._pods.get((namespace, service_name), {})
        return {pod: len(members.members) for pod, members in pods.items() if members.members}

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        """Remove up to ``limit`` links of the pod after the cursor, each as with its id."""
        uids, cursor = await self.pod_links_page(namespace, service_name, pod_id, after, limit)
        removed = sum(
            self._remove((namespace, uid, service_name), persist_seconds, pod_id) for uid in uids
        )
        return removed, cursor

    async def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        pod_id: int | None,
    ) -> int | None:
        """Keep (refreshing) the live link, else link to ``pod_id``; None links nothing."""
        key = (namespace, uid, service_name)
        if pod_id is None:
            self._now()
            if key not in self._links:
                return None
            pod_id = self._links[key].pod
        return self._keep_or_link(key, pod_id, persist_seconds)


def from_url(url: str, *, clock: Clock | None = None, **options: Any) -> MemoryBackend:
    """Build a `MemoryBackend` from ``memory://`` (no host, path or options)."""
    if url.rstrip("/") != "memory:":
        raise ValidationError("url", f"the memory backend takes just 'memory://', got {url!r}")
    if options:
        raise ValidationError("options", f"the memory backend takes none, got {sorted(options)}")
    return MemoryBackend(clock=clock)
