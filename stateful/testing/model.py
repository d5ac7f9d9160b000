"""The reference model: the contract as a plain, obviously correct Python object.

It is the oracle of the conformance kit. It favours clarity over speed: a
dictionary per kind of state, liveness computed on every read, no indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stateful.clock import Clock

PERMANENT = -1


@dataclass(frozen=True)
class Link:
    """A link of one (namespace, uid, service) to a pod; ``expires_at`` None = permanent."""

    pod: int
    expires_at: int | None


class ReferenceModel:
    """Synchronous model of one store; mirrors the executor's thirteen operations.

    Arguments are assumed valid (the conformance machine only sends valid
    calls to it); ``uids`` and ``service_names`` may contain duplicates.
    """

    def __init__(self, clock: Clock) -> None:
        """Create an empty store that reads the time from ``clock``."""
        self.clock = clock
        self.links: dict[tuple[str, str, str], Link] = {}
        self.pod_states: dict[tuple[str, str, int], str] = {}
        self.workload_states: dict[tuple[str, str], str] = {}

    # -- helpers -------------------------------------------------------------------

    def live(self, namespace: str, uid: str, service_name: str) -> Link | None:
        """Return the link if it is live now, else None."""
        link = self.links.get((namespace, uid, service_name))
        if link is None:
            return None
        if link.expires_at is not None and not self.clock.now_ms() < link.expires_at:
            return None
        return link

    def _make(self, pod: int, persist_seconds: int) -> Link:
        if persist_seconds == PERMANENT:
            return Link(pod, None)
        return Link(pod, self.clock.now_ms() + persist_seconds * 1000)

    def pending_expiries(self) -> list[int]:
        """Return the expiry instants (ms) of the temporary links still live, sorted."""
        now = self.clock.now_ms()
        return sorted(
            {
                link.expires_at
                for link in self.links.values()
                if link.expires_at is not None and now < link.expires_at
            }
        )

    # -- states --------------------------------------------------------------------

    def set_service_state(self, namespace: str, service_name: str, pod_id: int, state: str) -> None:
        """Overwrite a pod's state."""
        self.pod_states[(namespace, service_name, pod_id)] = state

    def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return pod → state for the service."""
        return {
            pod: state
            for (ns, svc, pod), state in self.pod_states.items()
            if ns == namespace and svc == service_name
        }

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
        self.links[(namespace, uid, service_name)] = self._make(pod_id, persist_seconds)
        return previous.pod if previous else None

    def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        current = self.live(namespace, uid, service_name)
        if current is not None and current.expires_at is None and current.pod != pod_id:
            return False, current.pod
        self.links[(namespace, uid, service_name)] = self._make(pod_id, persist_seconds)
        return True, pod_id

    def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing if temporary) or create the link; return its pod."""
        current = self.live(namespace, uid, service_name)
        if current is None:
            self.links[(namespace, uid, service_name)] = self._make(pod_id, persist_seconds)
            return pod_id
        if current.expires_at is not None:
            self.links[(namespace, uid, service_name)] = self._make(current.pod, persist_seconds)
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
            self.links[(namespace, uid, service_name)] = self._make(current.pod, persist_seconds)
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
