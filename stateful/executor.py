"""`StatefulExecutor`: the public API, delegating storage to a `Backend`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from stateful import validation as v
from stateful.backend import Backend
from stateful.errors import BackendError, BackendUnavailable, StatefulError

logger = logging.getLogger("stateful")

T = TypeVar("T")


class StatefulExecutor:
    """Routing-state store: user-to-pod links, pod states and workload states.

    Every method validates its arguments before any I/O (raising
    `ValidationError`), runs the backend call under the optional per-operation
    ``timeout`` (raising `BackendUnavailable` on expiry) and turns any driver
    exception into `BackendError` / `BackendUnavailable`.

    A cancelled or timed-out call leaves the store fully before or fully after
    it: unless the backend declares itself `Backend.cancel_safe`, its call
    runs in a shielded task that completes in the background (`aclose` waits
    for such calls), so no connection is abandoned mid-transaction.
    """

    def __init__(self, backend: Backend, *, timeout: float | None = None) -> None:
        """Wrap ``backend``; ``timeout`` is the limit in seconds for each operation."""
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds or None")
        self._backend = backend
        self._timeout = timeout
        self._inflight: set[asyncio.Future[Any]] = set()
        self._closed = False

    @property
    def backend(self) -> Backend:
        """The backend this executor delegates to."""
        return self._backend

    @property
    def timeout(self) -> float | None:
        """The per-operation timeout in seconds, or None for no limit."""
        return self._timeout

    def __repr__(self) -> str:
        return f"StatefulExecutor({self._backend!r}, timeout={self._timeout!r})"

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait for calls still running in the background, then close the backend.

        Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        if self._inflight:
            await asyncio.wait(set(self._inflight))
        await self._backend.aclose()

    # -- plumbing ------------------------------------------------------------------

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise StatefulError(f"{operation}: the executor is closed")
        if self._backend.cancel_safe:
            work = self._translated(operation, call)
        else:
            work = self._shielded(operation, call)
        if self._timeout is None:
            return await work
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"{operation}: timed out after {self._timeout} s; the outcome is unknown"
            ) from exc

    async def _shielded(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        # The call runs in its own task, so a cancelled caller (or a timeout)
        # cannot interrupt the backend mid-transaction; aclose() waits for it.
        task = asyncio.ensure_future(self._translated(operation, call))
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._inflight.discard(task)
        # Retrieve the exception of a call whose caller went away, so asyncio does
        # not report it as never retrieved; the caller already got its answer.
        if not task.cancelled() and task.exception() is not None:
            logger.debug("stateful call failed after its caller left", exc_info=task.exception())

    async def _translated(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except StatefulError:
            raise
        except Exception as exc:
            kind = BackendUnavailable if self._backend.is_unavailable(exc) else BackendError
            logger.debug("stateful %s failed: %r", operation, exc)
            raise kind(f"{operation}: {type(exc).__name__}: {exc}") from exc

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self, namespace: str, service_name: str, pod_id: int, state: str
    ) -> None:
        """Set the state (e.g. ``"ready"``, ``"draining"``) of one pod of a service."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        pod, st = v.check_pod_id(pod_id), v.check_state(state)
        await self._run(
            "set_service_state", lambda: self._backend.set_service_state(ns, svc, pod, st)
        )

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return the state of every pod of a service that has one, pod id → state."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        return await self._run(
            "get_service_state", lambda: self._backend.get_service_state(ns, svc)
        )

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Set the workload state (e.g. ``"stable"``, ``"updating"``) of a service."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        st = v.check_state(state)
        await self._run("set_workload_state", lambda: self._backend.set_workload_state(ns, svc, st))

    async def get_workload_state(
        self, namespace: str, service_names: Iterable[str]
    ) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""
        ns = v.check_namespace(namespace)
        names = v.check_unique_strings("service_names", service_names, v.MAX_SERVICE_NAME)
        if not names:
            return {}
        return await self._run(
            "get_workload_state", lambda: self._backend.get_workload_state(ns, names)
        )

    # -- links ---------------------------------------------------------------------

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link ``uid`` to ``pod_id``: permanently (``-1``) or for N seconds.

        Returns the pod of the live link before the call, or None.
        """
        ns, u, svc = self._link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        return await self._run(
            "set_linked_pod", lambda: self._backend.set_linked_pod(ns, u, svc, pod, ttl)
        )

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link ``uid`` to ``pod_id`` unless a live permanent link to another pod exists.

        Returns ``(True, pod_id)`` after linking, else ``(False, linked_pod)``
        with nothing changed. A temporary link never blocks.
        """
        ns, u, svc = self._link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        return await self._run(
            "try_set_linked_pod",
            lambda: self._backend.try_set_linked_pod(ns, u, svc, pod, ttl),
        )

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Return the pod of the live link, creating the link to ``pod_id`` if there is none.

        An existing temporary link keeps its pod but gets ``persist_seconds`` as
        its new lifetime (``-1`` makes it permanent); a permanent one is kept.
        """
        ns, u, svc = self._link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        return await self._run(
            "set_linked_pod_if_absent",
            lambda: self._backend.set_linked_pod_if_absent(ns, u, svc, pod, ttl),
        )

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the pod ``uid`` is linked to for the service, or None."""
        ns, u, svc = self._link_key(namespace, uid, service_name)
        return await self._run("get_linked_pod", lambda: self._backend.get_linked_pod(ns, u, svc))

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the linked pod only if the link is permanent, else None."""
        ns, u, svc = self._link_key(namespace, uid, service_name)
        return await self._run(
            "get_linked_pod_if_persist",
            lambda: self._backend.get_linked_pod_if_persist(ns, u, svc),
        )

    async def batch_get_linked_pod(
        self, namespace: str, uids: Iterable[str], service_name: str
    ) -> dict[int, list[str]]:
        """Group the uids that have a live link by pod: pod → uids in input order.

        Each distinct uid appears once; uids without a link are left out.
        """
        ns = v.check_namespace(namespace)
        unique = v.check_unique_strings("uids", uids, v.MAX_UID)
        svc = v.check_service_name(service_name)
        if not unique:
            return {}
        return await self._run(
            "batch_get_linked_pod",
            lambda: self._backend.batch_get_linked_pod(ns, unique, svc),
        )

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link; with ``persist_seconds`` N > 0 keep it N s as temporary.

        ``-1`` or ``0`` delete it. Returns False if there was no live link.
        """
        ns, u, svc = self._link_key(namespace, uid, service_name)
        ttl = v.check_remove_persist(persist_seconds)
        return await self._run(
            "remove_linked_pod", lambda: self._backend.remove_linked_pod(ns, u, svc, ttl)
        )

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """As `remove_linked_pod`, but only if the live link points at ``pod_id``."""
        ns, u, svc = self._link_key(namespace, uid, service_name)
        ttl, pod = v.check_remove_persist(persist_seconds), v.check_pod_id(pod_id)
        return await self._run(
            "remove_linked_pod_with_id",
            lambda: self._backend.remove_linked_pod_with_id(ns, u, svc, ttl, pod),
        )

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links, service → pod."""
        ns, u = v.check_namespace(namespace), v.check_uid(uid)
        return await self._run("get_link_service", lambda: self._backend.get_link_service(ns, u))

    @staticmethod
    def _link_key(namespace: object, uid: object, service_name: object) -> tuple[str, str, str]:
        return v.check_namespace(namespace), v.check_uid(uid), v.check_service_name(service_name)
