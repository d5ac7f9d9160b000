"""A fault-injection wrapper: a backend whose store fails now and then.

`FaultyBackend` wraps the backend under test. Before a chosen call it raises
`ConnectionError` without calling the store (the request never left), or
after the store answered it raises one instead of the answer (the reply was
lost). Either way the executor must raise `stateful.BackendUnavailable` (a
driver error never leaks), and the store must be fully before or fully after
the call.
"""

from __future__ import annotations

import random
from typing import Any

from stateful.backend import Backend, Cursor
from stateful.records import LinkInfo


class InjectedFault(ConnectionError):
    """The fault `FaultyBackend` raises: a lost connection, before or after the store acted."""


class FaultyBackend(Backend):
    """Delegates to ``inner``; the next call fails as `arm` says, then it behaves again."""

    def __init__(self, inner: Backend, *, seed: int = 0) -> None:
        """Wrap ``inner``; ``seed`` makes the random choices repeatable."""
        self.inner = inner
        self.cancel_safe = inner.cancel_safe
        self.cancel_safe_operations = inner.cancel_safe_operations
        self.unavailable_errors = (*inner.unavailable_errors, InjectedFault)
        self._random = random.Random(seed)
        self._armed: str | None = None

    def arm(self, when: str) -> None:
        """Make the next call fail ``"before"`` it reaches the store or ``"after"`` it answered."""
        if when not in ("before", "after"):
            raise ValueError(when)
        self._armed = when

    def arm_randomly(self) -> str:
        """Arm before or after at random; return which."""
        when = self._random.choice(("before", "after"))
        self.arm(when)
        return when

    def is_unavailable(self, error: BaseException) -> bool:
        """Treat the injected fault, and whatever ``inner`` treats so, as unavailability."""
        return isinstance(error, InjectedFault) or self.inner.is_unavailable(error)

    async def _call(self, name: str, *args: Any) -> Any:
        armed, self._armed = self._armed, None
        if armed == "before":
            raise InjectedFault(f"injected: {name} never reached the store")
        result = await getattr(self.inner, name)(*args)
        if armed == "after":
            raise InjectedFault(f"injected: the reply to {name} was lost")
        return result

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.inner.aclose()

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Delegate (maybe failing)."""
        await self._call("set_service_state", namespace, service_name, pod_id, state, ttl_seconds)

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Delegate (maybe failing)."""
        result: dict[int, str] = await self._call("get_service_state", namespace, service_name)
        return result

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delegate (maybe failing)."""
        return bool(await self._call("remove_service_state", namespace, service_name, pod_id))

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Delegate (maybe failing)."""
        await self._call("set_workload_state", namespace, service_name, state)

    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Delegate (maybe failing)."""
        result: dict[str, str] = await self._call("get_workload_state", namespace, service_names)
        return result

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Delegate (maybe failing)."""
        result: int | None = await self._call(
            "set_linked_pod", namespace, uid, service_name, pod_id, persist_seconds
        )
        return result

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Delegate (maybe failing)."""
        result: tuple[bool, int] = await self._call(
            "try_set_linked_pod", namespace, uid, service_name, pod_id, persist_seconds
        )
        return result

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Delegate (maybe failing)."""
        result: int = await self._call(
            "set_linked_pod_if_absent", namespace, uid, service_name, pod_id, persist_seconds
        )
        return result

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Delegate (maybe failing)."""
        result: int | None = await self._call("get_linked_pod", namespace, uid, service_name)
        return result

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Delegate (maybe failing)."""
        result: int | None = await self._call(
            "get_linked_pod_if_persist", namespace, uid, service_name
        )
        return result

    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Delegate (maybe failing)."""
        result: dict[int, list[str]] = await self._call(
            "batch_get_linked_pod", namespace, uids, service_name
        )
        return result

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Delegate (maybe failing)."""
        return bool(
            await self._call("remove_linked_pod", namespace, uid, service_name, persist_seconds)
        )

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """Delegate (maybe failing)."""
        return bool(
            await self._call(
                "remove_linked_pod_with_id", namespace, uid, service_name, persist_seconds, pod_id
            )
        )

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Delegate (maybe failing)."""
        result: dict[str, int] = await self._call("get_link_service", namespace, uid)
        return result

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Delegate (maybe failing)."""
        result: LinkInfo | None = await self._call("get_link_info", namespace, uid, service_name)
        return result

    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Delegate (maybe failing)."""
        result: tuple[list[str], Cursor] = await self._call(
            "pod_links_page", namespace, service_name, pod_id, after, limit
        )
        return result

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Delegate (maybe failing)."""
        result: dict[int, int] = await self._call("count_pod_links", namespace, service_name)
        return result

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        """Delegate (maybe failing)."""
        result: tuple[int, Cursor] = await self._call(
            "remove_pod_links_page", namespace, service_name, pod_id, persist_seconds, after, limit
        )
        return result

    async def place_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int | None
    ) -> int | None:
        """Delegate (maybe failing)."""
        result: int | None = await self._call(
            "place_linked_pod", namespace, uid, service_name, persist_seconds, pod_id
        )
        return result


class Borrowed(FaultyBackend):
    """Another handle on a backend that one executor owns: closing it closes nothing.

    The kit runs several executors over the backend under test; only the
    first closes it, since a backend (or its test harness) may not expect
    `aclose` twice.
    """

    async def aclose(self) -> None:
        """Leave the backend to its owner."""
