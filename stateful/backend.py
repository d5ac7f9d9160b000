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

To write a backend: subclass `Backend`, implement the thirteen operations and
`aclose`, then prove it with `stateful.testing` (the conformance kit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


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

    def is_unavailable(self, error: BaseException) -> bool:
        """Tell whether ``error`` means the store was unreachable (outcome unknown).

        Override for drivers whose exception classes need a closer look.
        """
        return isinstance(error, self.unavailable_errors)

    # -- pod and workload states ------------------------------------------------

    @abstractmethod
    async def set_service_state(
        self, namespace: str, service_name: str, pod_id: int, state: str
    ) -> None:
        """Overwrite the state of one pod of a service."""

    @abstractmethod
    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return every pod state of a service, pod id → state."""

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

    # -- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections and background tasks. Must be safe to call twice."""
