"""The backend interface: what a storage adapter implements.

The executor (`stateful.StatefulExecutor`) validates every argument, applies
timeouts, wraps errors and logs; a backend only stores. When a method is
called, its arguments already obey the input rules of the contract:

* strings are valid, non-empty identifiers;
* ``pod_id`` is in 0..2**31-1;
* ``persist_seconds`` is ``-1`` (permanent) or ``1..315360000`` on set
  methods, and also ``0`` on remove methods;
* ``uids`` / ``service_names`` are non-empty lists without duplicates.

A link is *live* at ``now`` iff it is permanent or ``now < expires_at`` (in
milliseconds). A link that is not live must behave as absent everywhere.
Every method must be atomic: it takes effect at one instant, also when many
executors, processes and connections share one store.

To write a backend: subclass `Backend`, implement the abstract operations and
`aclose`, then prove it with `stateful.testing` (the conformance kit).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from stateful.records import LinkInfo

#: The operations a backend serves: the methods the executor calls.
OPERATIONS: tuple[str, ...] = (
    "set_service_state",
    "get_service_state",
    "remove_service_state",
    "set_workload_state",
    "get_workload_state",
    "set_linked_pod",
    "try_set_linked_pod",
    "set_linked_pod_if_absent",
    "get_linked_pod",
    "get_linked_pod_if_persist",
    "batch_get_linked_pod",
    "remove_linked_pod",
    "remove_linked_pod_with_id",
    "get_link_service",
    "get_link_info",
    "pod_links_page",
    "count_pod_links",
    "remove_pod_links_page",
    "place_linked_pod",
)

#: Page cursor of `Backend.pod_links_page`: opaque to the executor; None = start / done.
Cursor = str | None


@dataclass(slots=True)
class CallState:
    """What the executor wants to know about the call in progress (see `waiting_for_connection`)."""

    waiting_for_connection: bool = False


@dataclass(frozen=True, slots=True)
class InstantLinks:
    """A backend's link read and write as plain functions (see `Backend.instant_links`).

    Same arguments, answers and atomicity as the coroutines of the same names.
    """

    get_linked_pod: Callable[[str, str, str], int | None]
    set_linked_pod: Callable[[str, str, str, int, int], int | None]


#: Set by the executor around each call made under a timeout.
current_call: ContextVar[CallState | None] = ContextVar("stateful_current_call", default=None)


@contextmanager
def waiting_for_connection() -> Iterator[None]:
    """Mark the wait for a pooled connection, so a timeout there is `PoolExhausted`.

    Backends wrap their pool checkout in it: if the executor's timeout expires
    inside, the caller gets `stateful.PoolExhausted` (nothing was sent)
    instead of a plain `BackendUnavailable` (outcome unknown).
    """
    state = current_call.get()
    if state is None:
        yield
        return
    state.waiting_for_connection = True
    try:
        yield
    except asyncio.CancelledError:
        # Keep the mark: the executor reads it only after its timeout's
        # cancellation has unwound this wait (a cancel-safe backend is awaited
        # directly, in the caller's task).
        raise
    except BaseException:
        state.waiting_for_connection = False
        raise
    state.waiting_for_connection = False


class Backend(ABC):
    """Storage adapter behind a `stateful.StatefulExecutor`."""

    #: Exceptions (besides `stateful.StatefulError`) that mean "the store could
    #: not be reached"; the executor turns them into `BackendUnavailable`.
    #: Anything else a backend raises becomes `BackendError`.
    unavailable_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    #: True if cancelling a call at any ``await`` leaves the store fully before
    #: or fully after it and the backend's connections usable (e.g. no awaits
    #: inside a critical section, or one atomic command on a connection the
    #: driver discards when interrupted). The executor then awaits calls
    #: directly; otherwise it runs each call in a shielded task (about 40 µs
    #: more per call) that completes even if the caller is cancelled.
    cancel_safe: bool = False

    #: The operations (executor method names, e.g. ``"get_linked_pod"``) that
    #: are cancel-safe on their own, as `cancel_safe` describes, when the
    #: backend as a whole is not: typically a read, one statement on a
    #: connection that the driver discards if the call is interrupted (and a
    #: wait for a pooled connection that, cancelled, leaves nothing queued to
    #: run later). A write qualifies only if, once interrupted, it cannot take
    #: effect later: a statement the server keeps running after its
    #: connection was dropped can commit after the caller has moved on. The
    #: executor awaits those calls directly, without a task.
    cancel_safe_operations: frozenset[str] = frozenset()

    def is_unavailable(self, error: BaseException) -> bool:
        """Tell whether ``error`` means the store was unreachable (outcome unknown).

        Override for drivers whose exception classes need a closer look.
        """
        return isinstance(error, self.unavailable_errors)

    def instant_links(self) -> InstantLinks | None:
        """Return the link read and write as plain functions, if the store is this process.

        A router calls these two on every request. A backend that serves them
        without I/O (the memory backend) returns them here, and the executor
        then calls them in the caller's task, skipping the coroutines, when it
        has no timeout and no observer. They must never block. The default,
        None, means every call goes through the coroutines.
        """
        return None

    # -- pod and workload states ------------------------------------------------

    @abstractmethod
    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        ttl_seconds: int | None = None,
    ) -> None:
        """Overwrite the state of one pod of a service.

        With ``ttl_seconds`` (1..315360000) the state is gone that many seconds
        later unless set again (a heartbeat); without it, it is permanent.
        """

    @abstractmethod
    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every live pod state of a service, pod id → state."""

    @abstractmethod
    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state; return whether it had a live one."""

    @abstractmethod
    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Overwrite the workload state of a service."""

    @abstractmethod
    async def get_workload_state(self, namespace: str, service_names: list[str]) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""

    # -- links ---------------------------------------------------------------------

    @abstractmethod
    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link the uid to ``pod_id``; return the pod of the live link before, or None."""

    @abstractmethod
    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link unless a live permanent link to another pod exists.

        Return ``(True, pod_id)`` after linking, or ``(False, other_pod)``
        leaving the store unchanged.
        """

    @abstractmethod
    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Keep a live link (refreshing a temporary one) or create one; return its pod.

        A live temporary link gets ``persist_seconds`` as its new lifetime
        (``-1`` makes it permanent); a live permanent link is left as it is.
        """

    @abstractmethod
    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the pod of the live link, or None."""

    @abstractmethod
    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the pod of the live link only if it is permanent, else None."""

    @abstractmethod
    async def batch_get_linked_pod(
        self, namespace: str, uids: list[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the uids that have a live link by pod, each list in input order."""

    @abstractmethod
    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link (or, for N > 0, keep it as temporary for N s).

        Return False if there was no live link.
        """

    @abstractmethod
    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """As `remove_linked_pod`, but only if the live link points at ``pod_id``."""

    @abstractmethod
    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links, service → pod."""

    @abstractmethod
    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update, or None."""

    # -- pods ----------------------------------------------------------------------

    @abstractmethod
    async def pod_links_page(
        self, namespace: str, service_name: str, pod_id: int, after: Cursor, limit: int
    ) -> tuple[list[str], Cursor]:
        """Return up to ``limit`` uids whose live link points at the pod, and the next cursor.

        Uids come in an order that does not change while they stay linked,
        starting strictly after the position ``after`` (None: the start). The
        returned cursor continues from the last uid returned; None means the
        pod has no more. A uid linked to the pod for the whole walk must come
        exactly once; a uid must never come unless its link pointed at the pod
        at some instant of the walk. Cost must grow with the pod's links, never
        with the store's.
        """

    @abstractmethod
    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return live links per pod of the service, leaving out pods with none.

        Exact whenever no write runs concurrently; cost grows with the
        service's links and pods, never with the store's.
        """

    async def remove_pod_links_page(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        persist_seconds: int,
        after: Cursor,
        limit: int,
    ) -> tuple[int, Cursor]:
        """Apply `remove_linked_pod_with_id` to up to ``limit`` links of the pod.

        Walks the pod's links as `pod_links_page` does, from ``after``; returns
        how many were removed (a link that moved meanwhile is left alone) and
        the cursor to continue from (None when done). This default does it one
        link at a time; backends override it to do a page in fewer round trips.
        """
        uids, cursor = await self.pod_links_page(namespace, service_name, pod_id, after, limit)
        removed = 0
        for uid in uids:
            if await self.remove_linked_pod_with_id(
                namespace, uid, service_name, persist_seconds, pod_id
            ):
                removed += 1
        return removed, cursor

    @abstractmethod
    async def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        pod_id: int | None,
    ) -> int | None:
        """Atomically: keep a live link or link the uid to ``pod_id``; return the pod.

        If the uid has a live link, refresh it exactly as
        `set_linked_pod_if_absent` does and return its pod. Otherwise link it
        to ``pod_id`` (the executor's least-loaded choice) and return
        ``pod_id``; when ``pod_id`` is None, change nothing and return None.
        """

    # -- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections and background tasks. Must be safe to call twice.

        The executor bounds it (`StatefulExecutor.aclose`) and cancels it when
        the bound runs out: it must then stop waiting at once and drop (not
        gracefully close) whatever connections are left.
        """
