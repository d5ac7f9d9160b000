"""A stateful backend that keeps the whole store in one JSON file.

Every operation takes an exclusive ``fcntl`` lock on the file, reads it,
changes it, writes it to a temporary file and renames it over the old one,
then releases the lock: each call is atomic, also across processes, and a
crash leaves the old or the new file, never half of one. It is slow (the
whole file per call) and POSIX-only: an example of writing a backend and
proving it with the conformance kit, not a production store.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stateful.backend import Backend, Cursor
from stateful.clock import Clock, SystemClock
from stateful.records import LinkInfo

T = TypeVar("T")
PERMANENT = -1


class JsonFileBackend(Backend):
    """The store as one JSON document: links, pod states and workload states."""

    # Each call does all its work without an await: cancelling one cannot cut it.
    cancel_safe = True

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        """Use the file at ``path`` (created when missing), reading time from ``clock``."""
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._clock = clock or SystemClock()
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- the file ------------------------------------------------------------------

    def _transaction(self, change: Callable[[dict[str, Any], int], T], *, writes: bool = True) -> T:
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self._load()
                now = self._clock.now_ms()
                purged = self._purge(data, now)
                try:
                    result = change(data, now)
                except BaseException:
                    self._cached = None  # the copy in memory may be half changed
                    raise
                if writes or purged:
                    self._save(data)
                return result
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        # Re-read the file unless it is the one this object wrote or read last.
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._cached = None
            return {"links": {}, "states": {}, "workloads": {}}
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cached is None or self._cached[0] != signature:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self._cached = (signature, data)
        return self._cached[1]

    def _save(self, data: dict[str, Any]) -> None:
        # Write a new file and rename it over the old: a crash leaves one or the other.
        fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=".store-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temp, self._path)
        stat = self._path.stat()
        self._cached = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), data)

    @staticmethod
    def _purge(data: dict[str, Any], now: int) -> bool:
        # Expired entries go before anything reads: "gone at now >= expiry", exactly.
        purged = False
        for table in ("links", "states"):
            dead = [k for k, v in data[table].items() if v["exp"] is not None and now >= v["exp"]]
            for key in dead:
                del data[table][key]
            purged = purged or bool(dead)
        return purged

    @staticmethod
    def _key(*parts: Any) -> str:
        # A JSON array is injective: json.dumps quotes and escapes every separator.
        return json.dumps(parts)

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite one pod's state, permanent or for ``ttl_seconds``."""

        def change(data: dict[str, Any], now: int) -> None:
            exp = None if ttl_seconds is None else now + ttl_seconds * 1000
            data["states"][self._key(namespace, service_name, pod_id)] = {
                "state": state,
                "exp": exp,
            }

        self._transaction(change)

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return pod → live state."""

        def read(data: dict[str, Any], now: int) -> dict[int, str]:
            found = {}
            for key, value in data["states"].items():
                ns, svc, pod = json.loads(key)
                if (ns, svc) == (namespace, service_name):
                    found[pod] = value["state"]
            return found

        return self._transaction(read, writes=False)

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state; tell whether it had a live one."""
        key = self._key(namespace, service_name, pod_id)
        return self._transaction(lambda data, now: data["states"].pop(key, None) is not None)

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite a workload state."""
        key = self._key(namespace, service_name)

        def change(data: dict[str, Any], now: int) -> None:
            data["workloads"][key] = state

        self._transaction(change)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""

        def read(data: dict[str, Any], now: int) -> dict[str, str]:
            found = {}
            for name in service_names:
                state = data["workloads"].get(self._key(namespace, name))
                if state is not None:
                    found[name] = state
            return found

        return self._transaction(read, writes=False)

    # -- links ---------------------------------------------------------------------

    @staticmethod
    def _link(pod: int, persist_seconds: int, now: int) -> dict[str, Any]:
        exp = None if persist_seconds == PERMANENT else now + persist_seconds * 1000
        return {"pod": pod, "exp": exp, "upd": now}

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link; return the previous live pod."""
        key = self._key(namespace, uid, service_name)

        def change(data: dict[str, Any], now: int) -> int | None:
            old = data["links"].get(key)
            data["links"][key] = self._link(pod_id, persist_seconds, now)
            return None if old is None else int(old["pod"])

        return self._transaction(change)

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists."""
        key = self._key(namespace, uid, service_name)

        def change(data: dict[str, Any], now: int) -> tuple[bool, int]:
            old = data["links"].get(key)
            if old is not None and old["exp"] is None and old["pod"] != pod_id:
                return False, int(old["pod"])
            data["links"][key] = self._link(pod_id, persist_seconds, now)
            return True, pod_id

        return self._transaction(change)

    def _keep_or_link(
        self, data: dict[str, Any], now: int, key: str, pod_id: int, persist: int
    ) -> int:
        old = data["links"].get(key)
        if old is None:
            data["links"][key] = self._link(pod_id, persist, now)
            return pod_id
        if old["exp"] is not None:
            data["links"][key] = self._link(old["pod"], persist, now)
        return int(old["pod"])

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep (refreshing a temporary link) or create the link."""
        key = self._key(namespace, uid, service_name)
        return self._transaction(
            lambda data, now: self._keep_or_link(data, now, key, pod_id, persist_seconds)
        )

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the live link's pod."""
        key = self._key(namespace, uid, service_name)

        def read(data: dict[str, Any], now: int) -> int | None:
            link = data["links"].get(key)
            return None if link is None else int(link["pod"])

        return self._transaction(read, writes=False)

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the live link's pod if it is permanent."""
        key = self._key(namespace, uid, service_name)

        def read(data: dict[str, Any], now: int) -> int | None:
            link = data["links"].get(key)
            return None if link is None or link["exp"] is not None else int(link["pod"])

        return self._transaction(read, writes=False)

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the live-linked uids by pod, in input order."""

        def read(data: dict[str, Any], now: int) -> dict[int, list[str]]:
            grouped: dict[int, list[str]] = {}
            for uid in uids:
                link = data["links"].get(self._key(namespace, uid, service_name))
                if link is not None:
                    grouped.setdefault(int(link["pod"]), []).append(uid)
            return grouped

        return self._transaction(read, writes=False)

    def _remove(self, key: str, persist_seconds: int, pod_id: int | None) -> bool:
        def change(data: dict[str, Any], now: int) -> bool:
            old = data["links"].get(key)
            if old is None or (pod_id is not None and old["pod"] != pod_id):
                return False
            if persist_seconds > 0:
                data["links"][key] = self._link(old["pod"], persist_seconds, now)
            else:
                del data["links"][key]
            return True

        return self._transaction(change)

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link, or keep it N seconds."""
        return self._remove(self._key(namespace, uid, service_name), persist_seconds, None)

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """Remove the live link if it points at ``pod_id``."""
        return self._remove(self._key(namespace, uid, service_name), persist_seconds, pod_id)

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links."""

        def read(data: dict[str, Any], now: int) -> dict[str, int]:
            found = {}
            for key, link in data["links"].items():
                ns, u, svc = json.loads(key)
                if (ns, u) == (namespace, uid) and link["exp"] is None:
                    found[svc] = int(link["pod"])
            return found

        return self._transaction(read, writes=False)

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update."""
        key = self._key(namespace, uid, service_name)

        def read(data: dict[str, Any], now: int) -> LinkInfo | None:
            link = data["links"].get(key)
            if link is None:
                return None
            return LinkInfo(namespace, uid, service_name, link["pod"], link["exp"], link["upd"])

        return self._transaction(read, writes=False)

    # -- pods ----------------------------------------------------------------------

    def _pod_uids(
        self, data: dict[str, Any], namespace: str, service_name: str, pod: int
    ) -> list[str]:
        uids = []
        for key, link in data["links"].items():
            ns, uid, svc = json.loads(key)
            if (ns, svc) == (namespace, service_name) and link["pod"] == pod:
                uids.append(uid)
        return sorted(uids)

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Return up to ``limit`` uids of the pod after ``after``, in uid order."""

        def read(data: dict[str, Any], now: int) -> tuple[list[str], Cursor]:
            uids = [
                u
                for u in self._pod_uids(data, namespace, service_name, pod_id)
                if after is None or u > after
            ]
            page = uids[:limit]
            return page, (page[-1] if len(uids) > limit else None)

        return self._transaction(read, writes=False)

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod."""

        def read(data: dict[str, Any], now: int) -> dict[int, int]:
            counts: dict[int, int] = {}
            for key, link in data["links"].items():
                ns, _, svc = json.loads(key)
                if (ns, svc) == (namespace, service_name):
                    counts[link["pod"]] = counts.get(link["pod"], 0) + 1
            return counts

        return self._transaction(read, writes=False)

    async def place_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int | None
    ) -> int | None:
        """Keep (refreshing) the live link, else link to ``pod_id``."""
        key = self._key(namespace, uid, service_name)

        def change(data: dict[str, Any], now: int) -> int | None:
            old = data["links"].get(key)
            if old is None and pod_id is None:
                return None
            target = int(old["pod"]) if old is not None else pod_id
            assert target is not None
            return self._keep_or_link(data, now, key, target, persist_seconds)

        return self._transaction(change)


def from_url(url: str, *, clock: Clock | None = None, **options: Any) -> JsonFileBackend:
    """Build a backend from ``jsonfile:///path/to/store.json``."""
    if options:
        raise ValueError(f"the jsonfile backend takes no options, got {sorted(options)}")
    return JsonFileBackend(urlsplit(url).path, clock=clock)
