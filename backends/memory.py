"""In-memory backend (``memory://``): for tests and single-process use.

Every operation runs without an ``await`` inside, so under asyncio each one
is atomic by construction. Expired links are dropped lazily: a min-heap of
expiry instants is popped on each call, so no call scans all links.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from stateful.backend import Backend
from stateful.clock import Clock, SystemClock
from stateful.errors import ValidationError
from stateful.validation import PERMANENT

LinkKey = tuple[str, str, str]  # namespace, uid, service


@dataclass(slots=True)
class _Link:
    pod: int
    expires_at: int | None  # milliseconds; None = permanent


class MemoryBackend(Backend):
    """Keeps everything in dictionaries of this process."""

    cancel_safe = True  # no await inside any operation: it cannot be interrupted

    def __init__(self, *, clock: Clock | None = None) -> None:
        """Create an empty store that reads time from ``clock`` (default: system clock)."""
        self._clock: Clock = clock or SystemClock()
        self._links: dict[LinkKey, _Link] = {}
        self._services_of_uid: dict[tuple[str, str], set[str]] = {}
        self._pod_states: dict[tuple[str, str], dict[int, str]] = {}
        self._workload_states: dict[tuple[str, str], str] = {}
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

    def _live(self, key: LinkKey) -> _Link | None:
        # _now() has already dropped every link with expires_at <= now.
        return self._links.get(key)

    def _store(self, key: LinkKey, pod: int, persist_seconds: int, now: int) -> None:
        expires_at = None if persist_seconds == PERMANENT else now + persist_seconds * 1000
        link = _Link(pod, expires_at)
        self._links[key] = link
        self._services_of_uid.setdefault(key[:2], set()).add(key[2])
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
        del self._links[key]
        services = self._services_of_uid[key[:2]]
        services.discard(key[2])
        if not services:
            del self._services_of_uid[key[:2]]

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self, namespace: str, service_name: str, pod_id: int, state: str
    ) -> None:
        """Overwrite the state of one pod of a service."""
        self._pod_states.setdefault((namespace, service_name), {})[pod_id] = state

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every pod state of a service."""
        return dict(self._pod_states.get((namespace, service_name), {}))

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

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link the uid; return the previous live pod."""
        now, key = self._now(), (namespace, uid, service_name)
        previous = self._live(key)
        self._store(key, pod_id, persist_seconds, now)
        return previous.pod if previous else None

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        now, key = self._now(), (namespace, uid, service_name)
        current = self._live(key)
        if current and current.expires_at is None and current.pod != pod_id:
            return False, current.pod
        self._store(key, pod_id, persist_seconds, now)
        return True, pod_id

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing a temporary link) or create the link; return its pod."""
        now, key = self._now(), (namespace, uid, service_name)
        current = self._live(key)
        if current is None:
            self._store(key, pod_id, persist_seconds, now)
            return pod_id
        if current.expires_at is not None:
            self._store(key, current.pod, persist_seconds, now)
        return current.pod

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod."""
        self._now()
        link = self._live((namespace, uid, service_name))
        return link.pod if link else None

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the live link's pod if the link is permanent."""
        self._now()
        link = self._live((namespace, uid, service_name))
        return link.pod if link and link.expires_at is None else None

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the linked uids by pod."""
        self._now()
        grouped: dict[int, list[str]] = {}
        for uid in uids:
            link = self._live((namespace, uid, service_name))
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
        current = self._live(key)
        if current is None or (pod_id is not None and current.pod != pod_id):
            return False
        if persist_seconds > 0:
            self._store(key, current.pod, persist_seconds, now)
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


def from_url(url: str, *, clock: Clock | None = None, **options: Any) -> MemoryBackend:
    """Build a `MemoryBackend` from ``memory://`` (no host, path or options)."""
    if url.rstrip("/") != "memory:":
        raise ValidationError("url", f"the memory backend takes just 'memory://', got {url!r}")
    if options:
        raise ValidationError("options", f"the memory backend takes none, got {sorted(options)}")
    return MemoryBackend(clock=clock)
