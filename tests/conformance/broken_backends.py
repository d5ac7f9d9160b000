"""Deliberately wrong backends: each breaks one rule of the contract.

They exist to prove that the conformance kit catches real bugs: every one
must be killed under the ``ci`` profile with the seed pinned
(tests/conformance/test_kit_has_teeth.py). Each is a small change to the
memory backend, written the way the bug would look in a real store.
"""

from __future__ import annotations

import asyncio
import heapq
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from stateful.backend import Cursor
from stateful.backends.memory import MemoryBackend, _Link
from stateful.clock import SystemClock
from stateful.records import LinkInfo

# -- one operation gets a rule wrong ---------------------------------------------------


class TrySetIgnoresPermanence(MemoryBackend):
    """try_set_linked_pod overwrites a permanent link to another pod."""

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return True, pod_id


class TrySetBlockedByTemporary(MemoryBackend):
    """try_set_linked_pod refuses to replace a temporary link to another pod."""

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        self._now()
        current = self._links.get((namespace, uid, service_name))
        if current is not None and current.pod != pod_id:
            return False, current.pod
        return await super().try_set_linked_pod(
            namespace, uid, service_name, pod_id, persist_seconds
        )


class SetReturnsNewPod(MemoryBackend):
    """set_linked_pod returns the new pod instead of the previous one."""

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


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


class IfAbsentMakesPermanentTemporary(MemoryBackend):
    """set_linked_pod_if_absent gives a permanent link the new TTL too."""

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        now, key = self._now(), (namespace, uid, service_name)
        current = self._links.get(key)
        if current is None:
            self._store(key, pod_id, persist_seconds, now, None)
            return pod_id
        self._store(key, current.pod, persist_seconds, now, current)
        return current.pod


class RemoveIgnoresPersistWindow(MemoryBackend):
    """remove_linked_pod deletes the link even when asked to keep it for N seconds."""

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        return await super().remove_linked_pod(namespace, uid, service_name, 0)


class RemoveKeepsLinkPermanent(MemoryBackend):
    """remove_linked_pod with N > 0 leaves a permanent link permanent instead of temporary."""

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        if persist_seconds > 0:
            return await self.get_linked_pod(namespace, uid, service_name) is not None
        return await super().remove_linked_pod(namespace, uid, service_name, persist_seconds)


class RemoveWithIdIgnoresPod(MemoryBackend):
    """remove_linked_pod_with_id removes whatever pod the link points at."""

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        return await self.remove_linked_pod(namespace, uid, service_name, persist_seconds)


class LinkServiceListsTemporary(MemoryBackend):
    """get_link_service includes temporary links."""

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        self._now()
        return {
            svc: link.pod
            for (ns, u, svc), link in self._links.items()
            if ns == namespace and u == uid
        }


class LinkServiceIgnoresNamespace(MemoryBackend):
    """get_link_service returns the uid's permanent links of every namespace."""

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        self._now()
        return {
            svc: link.pod
            for (_, u, svc), link in self._links.items()
            if u == uid and link.expires_at is None
        }


class BatchGetRepeatsDuplicates(MemoryBackend):
    """batch_get_linked_pod lists a uid given twice twice."""

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        grouped = await super().batch_get_linked_pod(namespace, uids, service_name)
        for pod, members in grouped.items():
            grouped[pod] = members + members[:1]
        return grouped


class WorkloadStateLeaksAcrossNamespaces(MemoryBackend):
    """Workload states ignore the namespace."""

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        await super().set_workload_state("", service_name, state)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        return await super().get_workload_state("", service_names)


class RemoveServiceStateAlwaysTrue(MemoryBackend):
    """remove_service_state says there was a state even when there was none."""

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        await super().remove_service_state(namespace, service_name, pod_id)
        return True


class RemoveServiceStateRemovesService(MemoryBackend):
    """remove_service_state deletes the states of every pod of the service."""

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        had = await super().remove_service_state(namespace, service_name, pod_id)
        self._pod_states.pop((namespace, service_name), None)
        return had


# -- time ----------------------------------------------------------------------------


class OffByOneExpiry(MemoryBackend):
    """A link is still live at exactly its expiry instant."""

    def _now(self) -> int:
        now = self._clock.now_ms()
        while self._expiries and self._expiries[0][0] < now:  # should be <=
            _, _, key, link = heapq.heappop(self._expiries)
            if self._links.get(key) is link:
                self._delete(key)
        return now


class ExpiresOneMillisecondEarly(MemoryBackend):
    """A link is gone 1 ms before its expiry instant."""

    def _now(self) -> int:
        now = self._clock.now_ms()
        while self._expiries and self._expiries[0][0] <= now + 1:
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
        for uid in dict.fromkeys(uids):
            link = self._links.get((namespace, uid, service_name))
            if link:
                grouped.setdefault(link.pod, []).append(uid)
        return grouped


class PodLinksReturnsExpired(MemoryBackend):
    """pod_links reads the pod's members without dropping expired links first."""

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        members = self._pods.get((namespace, service_name), {}).get(pod_id)
        if members is None:
            return [], None
        uids, last = members.page(-1 if after is None else int(after), limit)
        return uids, None if last is None else str(last)


class CountIncludesExpired(MemoryBackend):
    """count_pod_links counts links without dropping expired ones first."""

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        pods = self._pods.get((namespace, service_name), {})
        return {pod: len(m.members) for pod, m in pods.items() if m.members}


class LinkInfoExpiryRounded(MemoryBackend):
    """get_link_info reports the expiry rounded down to the second (a seconds column)."""

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        info = await super().get_link_info(namespace, uid, service_name)
        if info is None or info.expires_at_ms is None:
            return info
        return LinkInfo(
            info.namespace, info.uid, info.service_name, info.pod_id,
            info.expires_at_ms // 1000 * 1000, info.updated_at_ms,
        )  # fmt: skip


class UpdatedAtNotRefreshed(MemoryBackend):
    """updated_at stays at the creation time when set_linked_pod_if_absent refreshes a link."""

    def _store(self, key: Any, pod: int, persist_seconds: int, now: int, old: _Link | None) -> None:
        super()._store(key, pod, persist_seconds, now, old)
        if old is not None and old.pod == pod:
            self._links[key].updated_at = old.updated_at


class UpdatedAtBumpedOnKeep(MemoryBackend):
    """set_linked_pod_if_absent bumps updated_at of a permanent link it keeps."""

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        now = self._now()
        kept = await super().set_linked_pod_if_absent(
            namespace, uid, service_name, pod_id, persist_seconds
        )
        self._links[(namespace, uid, service_name)].updated_at = now
        return kept


class StateTtlOffByOne(MemoryBackend):
    """A pod state with a TTL is still live at exactly its expiry instant."""

    def _live_states(self, namespace: str, service_name: str) -> dict[int, tuple[str, int | None]]:
        states = self._pod_states.get((namespace, service_name))
        if not states:
            return {}
        now = self._clock.now_ms()
        for pod in [p for p, (_, until) in states.items() if until is not None and now > until]:
            del states[pod]
        return states


class StateTtlIgnored(MemoryBackend):
    """set_service_state drops ttl_seconds: heartbeats never expire."""

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        await super().set_service_state(namespace, service_name, pod_id, state, None)


class StateTtlInTenthsOfSeconds(MemoryBackend):
    """set_service_state reads ttl_seconds as tenths of a second (a unit bug)."""

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        expires = None if ttl_seconds is None else self._clock.now_ms() + ttl_seconds * 100
        self._pod_states.setdefault((namespace, service_name), {})[pod_id] = (state, expires)


class IgnoresInjectedClock(MemoryBackend):
    """Reads the system clock although it was given one (declares injected_clock anyway)."""

    def __init__(self, *, clock: Any = None) -> None:
        super().__init__(clock=SystemClock())


# -- pods ----------------------------------------------------------------------------


class PodLinksRepeatsAcrossPages(MemoryBackend):
    """pod_links' cursor points one uid back: each page repeats the last uid of the one before."""

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        self._now()
        members = self._pods.get((namespace, service_name), {}).get(pod_id)
        if members is None:
            return [], None
        start = -1 if after is None else int(after)
        uids, last = members.page(start, limit)
        if last is not None and len(uids) > 1:
            last = members.members[uids[-2]]
        return uids, None if last is None else str(last)


class PodLinksSkipsAcrossPages(MemoryBackend):
    """pod_links' next page starts one uid too far on."""

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        uids, cursor = await super().pod_links_page(namespace, service_name, pod_id, after, limit)
        if cursor is None:
            return uids, None
        more, skip = await super().pod_links_page(namespace, service_name, pod_id, cursor, 1)
        return uids, skip if more else None


class PodLinksIgnoresPod(MemoryBackend):
    """pod_links yields every uid of the service, whatever its pod."""

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        if after is not None:
            return [], None
        self._now()
        return [u for (ns, u, s) in self._links if ns == namespace and s == service_name], None


class CountListsEmptyPods(MemoryBackend):
    """count_pod_links reports pods whose last link left, with 0."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seen: set[tuple[str, str, int]] = set()

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        counts = await super().count_pod_links(namespace, service_name)
        for ns, svc, pod in self._seen:
            if (ns, svc) == (namespace, service_name):
                counts.setdefault(pod, 0)
        self._seen.update((namespace, service_name, pod) for pod in counts)
        return counts


class CountCachedUntilNextSet(MemoryBackend):
    """count_pod_links caches its answer and only set_linked_pod clears the cache (stale counts)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._counts: dict[tuple[str, str], dict[int, int]] = {}

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        self._counts.pop((namespace, service_name), None)
        return await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        key = (namespace, service_name)
        if key not in self._counts:
            self._counts[key] = await super().count_pod_links(namespace, service_name)
        return dict(self._counts[key])


class RemovePodLinksIgnoresPod(MemoryBackend):
    """remove_pod_links removes the links of every pod of the service."""

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        self._now()
        keys = [k for k in self._links if k[0] == namespace and k[2] == service_name]
        return sum(self._remove(k, persist_seconds, None) for k in keys), None


class RemovePodLinksIgnoresPersist(MemoryBackend):
    """remove_pod_links deletes links even when asked to keep them N seconds."""

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        return await super().remove_pod_links_page(namespace, service_name, pod_id, 0, after, limit)


class RemovePodLinksCountsNothing(MemoryBackend):
    """remove_pod_links removes the links but reports 0."""

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        _, cursor = await super().remove_pod_links_page(
            namespace, service_name, pod_id, persist_seconds, after, limit
        )
        return 0, cursor


class PlaceIgnoresChoice(MemoryBackend):
    """place_linked_pod links new users to pod 0 instead of the executor's least-loaded choice."""

    async def place_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int | None
    ) -> int | None:
        chosen = None if pod_id is None else 0
        return await super().place_linked_pod(namespace, uid, service_name, persist_seconds, chosen)


class PlaceOverwritesLiveLink(MemoryBackend):
    """place_linked_pod moves a user who already has a live link."""

    async def place_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int | None
    ) -> int | None:
        if pod_id is None:
            return await super().place_linked_pod(
                namespace, uid, service_name, persist_seconds, None
            )
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


class PlaceDoesNotRefresh(MemoryBackend):
    """place_linked_pod keeps a temporary link without restarting its TTL."""

    async def place_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int | None
    ) -> int | None:
        current = await self.get_linked_pod(namespace, uid, service_name)
        if current is not None:
            return current
        return await super().place_linked_pod(namespace, uid, service_name, persist_seconds, pod_id)


class StatesFoldCase(MemoryBackend):
    """get_service_state lower-cases states (a case-insensitive state column)."""

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        states = await super().get_service_state(namespace, service_name)
        return {pod: state.lower() for pod, state in states.items()}


class StateTruncatedAt255(MemoryBackend):
    """set_service_state stores at most 255 characters of the state (a VARCHAR(255))."""

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        await super().set_service_state(namespace, service_name, pod_id, state[:255], ttl_seconds)


# -- batches -------------------------------------------------------------------------


class BatchOnlyFirstChunk(MemoryBackend):
    """batch_get_linked_pod sends only the first chunk of 1,000 uids."""

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        return await super().batch_get_linked_pod(namespace, uids[:1000], service_name)


class BatchChunkEdgeSkipped(MemoryBackend):
    """batch_get_linked_pod chunks as [i + 1 : i + 1000] after the first chunk, losing uid 1000."""

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        kept = uids[:1000] + [u for i, u in enumerate(uids[1000:], 1000) if i % 1000 != 0]
        return await super().batch_get_linked_pod(namespace, kept, service_name)


# -- answers that change after they were given ---------------------------------------


class ServiceStateReturnsInternalDict(MemoryBackend):
    """get_service_state hands out the dict it keeps, which later writes change."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mirror: dict[tuple[str, str], dict[int, str]] = {}

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        await super().set_service_state(namespace, service_name, pod_id, state, ttl_seconds)
        self._mirror.setdefault((namespace, service_name), {})[pod_id] = state

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        live = await super().get_service_state(namespace, service_name)
        mirror = self._mirror.setdefault((namespace, service_name), {})
        mirror.clear()
        mirror.update(live)
        return mirror


class BatchReturnsInternalLists(MemoryBackend):
    """batch_get_linked_pod hands out per-pod lists it reuses for the next answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lists: dict[int, list[str]] = {}

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        grouped = await super().batch_get_linked_pod(namespace, uids, service_name)
        for members in self._lists.values():
            members.clear()
        answer = {}
        for pod, members in grouped.items():
            kept = self._lists.setdefault(pod, [])
            kept.extend(members)
            answer[pod] = kept
        return answer


# -- atomicity and cancellation ------------------------------------------------------


class CheckThenActIfAbsent(MemoryBackend):
    """set_linked_pod_if_absent reads, awaits (a second round trip), then writes."""

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        current = await self.get_linked_pod(namespace, uid, service_name)
        await asyncio.sleep(0)
        if current is not None:
            return await super().set_linked_pod_if_absent(
                namespace, uid, service_name, current, persist_seconds
            )
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return pod_id


class CheckThenActTrySet(MemoryBackend):
    """try_set_linked_pod checks for a permanent link, awaits, then sets unconditionally."""

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        self._now()
        current = self._links.get((namespace, uid, service_name))
        await asyncio.sleep(0)
        if current and current.expires_at is None and current.pod != pod_id:
            return False, current.pod
        await self.set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return True, pod_id


class CancelSafeLiarSet(MemoryBackend):
    """Claims cancel_safe, but set_linked_pod deletes, awaits, then writes (a cancel loses it)."""

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        previous = await self.get_linked_pod(namespace, uid, service_name)
        if previous is not None:
            await super().remove_linked_pod(namespace, uid, service_name, 0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)
        return previous


class CancelSafeLiarState(MemoryBackend):
    """Claims cancel_safe, but set_service_state removes, awaits, then writes."""

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        await super().remove_service_state(namespace, service_name, pod_id)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await super().set_service_state(namespace, service_name, pod_id, state, ttl_seconds)


# -- keys that alias -----------------------------------------------------------------


class _AliasingKeys(MemoryBackend):
    """Stores under ``key(namespace, uid, service)`` while answering with the names given."""

    def key(self, namespace: str, uid: str, service: str) -> tuple[str, str, str]:
        raise NotImplementedError

    def _names(self) -> dict[tuple[str, str], str]:
        names: dict[tuple[str, str], str] = self.__dict__.setdefault("_original", {})
        return names

    def _k(self, namespace: str, uid: str, service: str) -> tuple[str, str, str]:
        ns, u, svc = self.key(namespace, uid, service)
        self._names()[("uid", u)] = uid
        self._names()[("svc", svc)] = service
        return ns, u, svc

    def _back(self, kind: str, value: str) -> str:
        return self._names().get((kind, value), value)

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        ns, _, svc = self._k(namespace, "u", service_name)
        await super().set_service_state(ns, svc, pod_id, state, ttl_seconds)

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        ns, _, svc = self._k(namespace, "u", service_name)
        return await super().get_service_state(ns, svc)

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        ns, _, svc = self._k(namespace, "u", service_name)
        return await super().remove_service_state(ns, svc, pod_id)

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        ns, _, svc = self._k(namespace, "u", service_name)
        await super().set_workload_state(ns, svc, state)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        found = {}
        for name in service_names:
            ns, _, svc = self._k(namespace, "u", name)
            states = await super().get_workload_state(ns, [svc])
            if svc in states:
                found[name] = states[svc]
        return found

    def _wrap(name: str) -> Callable[..., Any]:  # type: ignore[misc]
        async def call(
            self: _AliasingKeys, namespace: str, uid: str, service: str, *rest: Any
        ) -> Any:
            method = getattr(MemoryBackend, name)
            return await method(self, *self._k(namespace, uid, service), *rest)

        call.__name__ = name
        return call

    set_linked_pod = _wrap("set_linked_pod")
    try_set_linked_pod = _wrap("try_set_linked_pod")
    set_linked_pod_if_absent = _wrap("set_linked_pod_if_absent")
    get_linked_pod = _wrap("get_linked_pod")
    get_linked_pod_if_persist = _wrap("get_linked_pod_if_persist")
    remove_linked_pod = _wrap("remove_linked_pod")
    remove_linked_pod_with_id = _wrap("remove_linked_pod_with_id")
    place_linked_pod = _wrap("place_linked_pod")

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        info = await super().get_link_info(*self._k(namespace, uid, service_name))
        if info is None:
            return None
        return LinkInfo(
            namespace, uid, service_name, info.pod_id, info.expires_at_ms, info.updated_at_ms
        )

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = {}
        for uid in dict.fromkeys(uids):
            pod = await self.get_linked_pod(namespace, uid, service_name)
            if pod is not None:
                grouped.setdefault(pod, []).append(uid)
        return grouped

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        ns, u, _ = self._k(namespace, uid, "s")
        found = await super().get_link_service(ns, u)
        return {self._back("svc", svc): pod for svc, pod in found.items()}

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        ns, _, svc = self._k(namespace, "u", service_name)
        uids, cursor = await super().pod_links_page(ns, svc, pod_id, after, limit)
        return [self._back("uid", u) for u in uids], cursor

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        ns, _, svc = self._k(namespace, "u", service_name)
        return await super().count_pod_links(ns, svc)

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        ns, _, svc = self._k(namespace, "u", service_name)
        return await super().remove_pod_links_page(ns, svc, pod_id, persist_seconds, after, limit)


def _aliasing(name: str, doc: str, key: Callable[[str, str, str], tuple[str, str, str]]) -> type:
    cls = type(name, (_AliasingKeys,), {"key": lambda self, n, u, s: key(n, u, s), "__doc__": doc})
    cls.__module__ = __name__
    return cls


CaseInsensitiveUids = _aliasing(
    "CaseInsensitiveUids", "uids compared case-insensitively (a _ci collation).",
    lambda n, u, s: (n, u.lower(), s),
)  # fmt: skip
CaseInsensitiveNamespaces = _aliasing(
    "CaseInsensitiveNamespaces", "namespaces compared case-insensitively.",
    lambda n, u, s: (n.lower(), u, s),
)  # fmt: skip
CaseInsensitiveServices = _aliasing(
    "CaseInsensitiveServices", "service names compared case-insensitively.",
    lambda n, u, s: (n, u, s.lower()),
)  # fmt: skip
TrimsTrailingSpaces = _aliasing(
    "TrimsTrailingSpaces", "trailing spaces ignored in uids (PAD SPACE collation).",
    lambda n, u, s: (n, u.rstrip(" "), s),
)  # fmt: skip
NormalisesUnicode = _aliasing(
    "NormalisesUnicode", "uids normalised to NFC, so NFC and NFD forms share a link.",
    lambda n, u, s: (n, unicodedata.normalize("NFC", u), s),
)  # fmt: skip
UnescapesPercent = _aliasing(
    "UnescapesPercent", "uids percent-decoded before use, so '%3A' and ':' share a link.",
    lambda n, u, s: (n, unquote(u), s),
)  # fmt: skip
EscapesColonOnly = _aliasing(
    "EscapesColonOnly", "':' escaped as '%3A' but '%' itself not escaped: not injective.",
    lambda n, u, s: (n, u.replace(":", "%3A"), s),
)  # fmt: skip
UidTruncatedAt255 = _aliasing(
    "UidTruncatedAt255", "uids truncated to 255 characters (a VARCHAR(255)).",
    lambda n, u, s: (n, u[:255], s),
)  # fmt: skip
ServiceTruncatedAt191 = _aliasing(
    "ServiceTruncatedAt191", "service names truncated to 191 characters (an index prefix).",
    lambda n, u, s: (n, u, s[:191]),
)  # fmt: skip
NamespaceJoinedWithColon = _aliasing(
    "NamespaceJoinedWithColon",
    "keys built as 'namespace:uid', so ('a', 'c:s') and ('a:c', 's') alias.",
    lambda n, u, s: ("", f"{n}:{u}", s),
)  # fmt: skip
UidJoinedWithService = _aliasing(
    "UidJoinedWithService", "keys built as 'uid:service', so ('c', 's:s') and ('c:s', 's') alias.",
    lambda n, u, s: (n, f"{u}:{s}", ""),
)  # fmt: skip

BROKEN_BACKENDS: tuple[type[MemoryBackend], ...] = (
    TrySetIgnoresPermanence,
    TrySetBlockedByTemporary,
    SetReturnsNewPod,
    IfAbsentDoesNotRefresh,
    IfAbsentMakesPermanentTemporary,
    RemoveIgnoresPersistWindow,
    RemoveKeepsLinkPermanent,
    RemoveWithIdIgnoresPod,
    LinkServiceListsTemporary,
    LinkServiceIgnoresNamespace,
    BatchGetRepeatsDuplicates,
    WorkloadStateLeaksAcrossNamespaces,
    RemoveServiceStateAlwaysTrue,
    RemoveServiceStateRemovesService,
    OffByOneExpiry,
    ExpiresOneMillisecondEarly,
    BatchGetReturnsExpired,
    PodLinksReturnsExpired,
    CountIncludesExpired,
    LinkInfoExpiryRounded,
    UpdatedAtNotRefreshed,
    UpdatedAtBumpedOnKeep,
    StateTtlOffByOne,
    StateTtlIgnored,
    StateTtlInTenthsOfSeconds,
    IgnoresInjectedClock,
    PodLinksRepeatsAcrossPages,
    PodLinksSkipsAcrossPages,
    PodLinksIgnoresPod,
    CountListsEmptyPods,
    CountCachedUntilNextSet,
    RemovePodLinksIgnoresPod,
    RemovePodLinksIgnoresPersist,
    RemovePodLinksCountsNothing,
    PlaceIgnoresChoice,
    PlaceOverwritesLiveLink,
    PlaceDoesNotRefresh,
    StatesFoldCase,
    StateTruncatedAt255,
    BatchOnlyFirstChunk,
    BatchChunkEdgeSkipped,
    ServiceStateReturnsInternalDict,
    BatchReturnsInternalLists,
    CheckThenActIfAbsent,
    CheckThenActTrySet,
    CancelSafeLiarSet,
    CancelSafeLiarState,
    CaseInsensitiveUids,
    CaseInsensitiveNamespaces,
    CaseInsensitiveServices,
    TrimsTrailingSpaces,
    NormalisesUnicode,
    UnescapesPercent,
    EscapesColonOnly,
    UidTruncatedAt255,
    ServiceTruncatedAt191,
    NamespaceJoinedWithColon,
    UidJoinedWithService,
)
