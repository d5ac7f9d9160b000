"""The reference model: the contract as a plain, obviously correct Python object.

It is the oracle of the conformance kit. It favours clarity over speed: a
dictionary per kind of state, liveness computed on every read, no indexes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from stateful.clock import Clock
from stateful.records import LinkInfo

PERMANENT = -1


@dataclass(frozen=True)
class Link:
    """A link of one (namespace, uid, service) to a pod.

    ``expires_at`` is None for a permanent link; ``updated_at`` is when a call
    last set, refreshed or turned it temporary (milliseconds).
    """

    pod: int
    expires_at: int | None
    updated_at: int


@dataclass(frozen=True)
class PodState:
    """The state of one pod; ``expires_at`` None = permanent (no heartbeat TTL)."""

    state: str
    expires_at: int | None


class ReferenceModel:
    """Synchronous model of one store; mirrors the executor's operations.

    Arguments are assumed valid (the conformance machine only sends valid
    calls to it); ``uids`` and ``service_names`` may contain duplicates.
    """

    def __init__(self, clock: Clock) -> None:
        """Create an empty store that reads the time from ``clock``."""
        self.clock = clock
        self.links: dict[tuple[str, str, str], Link] = {}
        self.pod_states: dict[tuple[str, str, int], PodState] = {}
        self.workload_states: dict[tuple[str, str], str] = {}

    # -- helpers -------------------------------------------------------------------

    def _alive(self, expires_at: int | None) -> bool:
        return expires_at is None or self.clock.now_ms() < expires_at

    def live(self, namespace: str, uid: str, service_name: str) -> Link | None:
        """Return the link if it is live now, else None."""
        link = self.links.get((namespace, uid, service_name))
        if link is None or not self._alive(link.expires_at):
            return None
        return link

    def _store(self, key: tuple[str, str, str], pod: int, persist_seconds: int) -> None:
        now = self.clock.now_ms()
        expires_at = None if persist_seconds == PERMANENT else now + persist_seconds * 1000
        self.links[key] = Link(pod, expires_at, now)

    def pending_expiries(self) -> list[int]:
        """Return the expiry instants (ms) of the temporary links and states still live, sorted."""
        now = self.clock.now_ms()
        instants = [link.expires_at for link in self.links.values()]
        instants += [state.expires_at for state in self.pod_states.values()]
        return sorted({t for t in instants if t is not None and now < t})

    def live_links(self) -> dict[tuple[str, str, str], Link]:
        """Return every live link, keyed by (namespace, uid, service)."""
        return {key: link for key, link in self.links.items() if self._alive(link.expires_at)}

    # -- states --------------------------------------------------------------------

    def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite a pod's state, permanent or for ``ttl_seconds``."""
        expires_at = None if ttl_seconds is None else self.clock.now_ms() + ttl_seconds * 1000
        self.pod_states[(namespace, service_name, pod_id)] = PodState(state, expires_at)

    def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return pod → live state for the service."""
        return {
            pod: entry.state
            for (ns, svc, pod), entry in self.pod_states.items()
            if ns == namespace and svc == service_name and self._alive(entry.expires_at)
        }

    def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete a pod's state; return whether it had a live one."""
        entry = self.pod_states.pop((namespace, service_name, pod_id), None)
        return entry is not None and self._alive(entry.expires_at)

    def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite a service's workload state."""
        self.workload_states[(namespace, service_name)] = state

    def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Return service → workload state for the listed services that have one."""
        return {
            name: self.workload_states[(namespace, name)]
            for name in service_names
            if (namespace, name) in self.workload_states
        }

    # -- links ---------------------------------------------------------------------

    def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link; return the previous live pod."""
        previous = self.live(namespace, uid, service_name)
        self._store((namespace, uid, service_name), pod_id, persist_seconds)
        return previous.pod if previous else None

    def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        current = self.live(namespace, uid, service_name)
        if current is not None and current.expires_at is None and current.pod != pod_id:
            return False, current.pod
        self._store((namespace, uid, service_name), pod_id, persist_seconds)
        return True, pod_id

    def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing if temporary) or create the link; return its pod."""
        current = self.live(namespace, uid, service_name)
        if current is None:
            self._store((namespace, uid, service_name), pod_id, persist_seconds)
            return pod_id
        if current.expires_at is not None:
            self._store((namespace, uid, service_name), current.pod, persist_seconds)
        return current.pod

    def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod."""
        link = self.live(namespace, uid, service_name)
        return link.pod if link else None

    def get_linked_pod_if_persist(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod if permanent."""
        link = self.live(namespace, uid, service_name)
        return link.pod if link and link.expires_at is None else None

    def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the live-linked uids by pod, each once, in input order."""
        grouped: dict[int, list[str]] = {}
        seen: set[str] = set()
        for uid in uids:
            if uid in seen:
                continue
            seen.add(uid)
            link = self.live(namespace, uid, service_name)
            if link:
                grouped.setdefault(link.pod, []).append(uid)
        return grouped

    def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove, or keep as temporary for N > 0 seconds."""
        current = self.live(namespace, uid, service_name)
        if current is None:
            return False
        if persist_seconds > 0:
            self._store((namespace, uid, service_name), current.pod, persist_seconds)
        else:
            del self.links[(namespace, uid, service_name)]
        return True

    def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """Remove only if the live link points at ``pod_id``."""
        current = self.live(namespace, uid, service_name)
        if current is None or current.pod != pod_id:
            return False
        return self.remove_linked_pod(namespace, uid, service_name, persist_seconds)

    def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links."""
        return {
            svc: link.pod
            for (ns, u, svc), link in self.links.items()
            if ns == namespace and u == uid and link.expires_at is None
        }

    def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update."""
        link = self.live(namespace, uid, service_name)
        if link is None:
            return None
        return LinkInfo(namespace, uid, service_name, link.pod, link.expires_at, link.updated_at)

    # -- pods ------------------------------------------------------------------------

    def pod_links(self, namespace: str, service_name: str, pod_id: int) -> list[str]:
        """Return the uids whose live link points at the pod, sorted (order is not specified)."""
        return sorted(
            uid
            for (ns, uid, svc), link in self.live_links().items()
            if ns == namespace and svc == service_name and link.pod == pod_id
        )

    def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod of the service, pods with none left out."""
        return dict(
            Counter(
                link.pod
                for (ns, _, svc), link in self.live_links().items()
                if ns == namespace and svc == service_name
            )
        )

    def remove_pod_links(
        self, namespace: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Apply `remove_linked_pod_with_id` to every live link of the pod; return how many."""
        uids = self.pod_links(namespace, service_name, pod_id)
        return sum(
            self.remove_linked_pod_with_id(namespace, uid, service_name, persist_seconds, pod_id)
            for uid in uids
        )

    def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        states: Iterable[str] = ("ready",),
    ) -> int | None:
        """Keep (refreshing) the live link, else link to the least-loaded qualifying pod."""
        current = self.live(namespace, uid, service_name)
        if current is not None:
            return self.set_linked_pod_if_absent(
                namespace, uid, service_name, current.pod, persist_seconds
            )
        wanted = set(states)
        candidates = [
            pod
            for pod, state in self.get_service_state(namespace, service_name).items()
            if state in wanted
        ]
        if not candidates:
            return None
        counts = self.count_pod_links(namespace, service_name)
        choice = min(candidates, key=lambda pod: (counts.get(pod, 0), pod))
        self._store((namespace, uid, service_name), choice, persist_seconds)
        return choice
