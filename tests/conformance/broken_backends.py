"""Deliberately wrong backends: each breaks one rule of the contract.

They exist to prove that the conformance state machine catches real bugs.
"""

from __future__ import annotations

import heapq

from stateful.backends.memory import MemoryBackend


class TrySetIgnoresPermanence(MemoryBackend):
    """try_set_linked_pod overwrites a permanent link to another pod."""

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return True, pod_id


class OffByOneExpiry(MemoryBackend):
    """A link is still live at exactly its expiry instant."""

    def _now(self) -> int:
        now = self._clock.now_ms()
        while self._expiries and self._expiries[0][0] < now:  # should be <=
            _, _, key, link = heapq.heappop(self._expiries)
            if self._links.get(key) is link:
                self._delete(key)
        return now


class BatchGetReturnsExpired(MemoryBackend):
    """batch_get_linked_pod reads links without dropping expired ones first."""

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = {}
        for uid in uids:
            link = self._links.get((namespace, uid, service_name))
            if link:
                grouped.setdefault(link.pod, []).append(uid)
        return grouped


class IfAbsentDoesNotRefresh(MemoryBackend):
    """set_linked_pod_if_absent keeps a temporary link's old expiry."""

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        current = await self.get_linked_pod(namespace, uid, service_name)
        if current is not None:
            return current
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


class RemoveIgnoresPersistWindow(MemoryBackend):
    """remove_linked_pod deletes the link even when asked to keep it for N seconds."""

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        return await super().remove_linked_pod(namespace, uid, service_name, 0)


class LinkServiceListsTemporary(MemoryBackend):
    """get_link_service includes temporary links."""

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        self._now()
        return {
            svc: link.pod
            for (ns, u, svc), link in self._links.items()
            if ns == namespace and u == uid
        }


class RemoveWithIdIgnoresPod(MemoryBackend):
    """remove_linked_pod_with_id removes whatever pod the link points at."""

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        return await self.remove_linked_pod(namespace, uid, service_name, persist_seconds)


class SetReturnsNewPod(MemoryBackend):
    """set_linked_pod returns the new pod instead of the previous one."""

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


class NamespacesJoinedWithColon(MemoryBackend):
    """Keys links by "namespace:uid", so ("a", "b:c") and ("a:b", "c") share a link."""

    @staticmethod
    def _alias(namespace: str, uid: str) -> tuple[str, str]:
        return "", f"{namespace}:{uid}"

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        return await super().set_linked_pod(
            *self._alias(namespace, uid), service_name, pod_id, persist_seconds
        )

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        return await super().get_linked_pod(*self._alias(namespace, uid), service_name)


class WorkloadStateLeaksAcrossNamespaces(MemoryBackend):
    """Workload states ignore the namespace."""

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        await super().set_workload_state("", service_name, state)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        return await super().get_workload_state("", service_names)


BROKEN_BACKENDS: tuple[type[MemoryBackend], ...] = (
    TrySetIgnoresPermanence,
    OffByOneExpiry,
    BatchGetReturnsExpired,
    IfAbsentDoesNotRefresh,
    RemoveIgnoresPersistWindow,
    LinkServiceListsTemporary,
    RemoveWithIdIgnoresPod,
    SetReturnsNewPod,
    NamespacesJoinedWithColon,
    WorkloadStateLeaksAcrossNamespaces,
)
