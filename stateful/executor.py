"""`StatefulExecutor`: the public API, delegating storage to a `Backend`."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from stateful import validation as v
from stateful.backend import Backend, CallState, Cursor, InstantLinks, current_call
from stateful.errors import (
    BackendError,
    BackendUnavailable,
    PoolExhausted,
    StatefulError,
    ValidationError,
)
from stateful.placement import Placer
from stateful.records import LinkInfo

logger = logging.getLogger("stateful")

T = TypeVar("T")

#: The pod states `StatefulExecutor.place_linked_pod` places new users on by default.
PLACE_STATES = ("ready",)
_PLACE_STATES_SET = frozenset(v.check_unique_strings("states", PLACE_STATES, v.MAX_STATE))

#: Seconds `StatefulExecutor.aclose` may take unless told otherwise.
DEFAULT_CLOSE_TIMEOUT = 10.0
#: Uids per backend call when walking or draining a pod.
DEFAULT_PAGE_SIZE = 1000

#: Called when an operation ends: with its exception, or None on success.
Finish = Callable[[BaseException | None], None]


class Observer(Protocol):
    """Watches every operation (tracing, metrics); see `stateful.telemetry`."""

    def started(self, operation: str, namespace: str | None, service_name: str | None) -> Finish:
        """Note that ``operation`` starts; return the function to call when it ends."""
        ...


class StatefulExecutor:
    """Routing-state store: user-to-pod links, pod states and workload states.

    Every method validates its arguments before any I/O (raising
    `ValidationError`), runs the backend call under the optional per-operation
    ``timeout`` (raising `BackendUnavailable` on expiry, or `PoolExhausted` if
    it was still waiting for a connection) and turns any driver exception into
    `BackendError` / `BackendUnavailable`.

    A cancelled or timed-out call leaves the store fully before or fully after
    it: unless the backend declares itself `Backend.cancel_safe`, or the
    operation one of its `Backend.cancel_safe_operations`, its call runs in a
    shielded task that completes in the background, so no connection is
    abandoned mid-transaction. `aclose` waits for such calls, within
    ``close_timeout`` seconds. A cancel-safe call is awaited in the caller's
    task: cancelled, it stops there (while still waiting for a pooled
    connection, it never runs later).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float | None = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        observer: Observer | None = None,
    ) -> None:
        """Wrap ``backend``.

        ``timeout`` limits each operation (seconds, None for no limit);
        ``close_timeout`` bounds `aclose`; ``observer`` watches every
        operation (e.g. `stateful.telemetry.OpenTelemetryObserver`).
        """
        self._timeout = v.check_seconds("timeout", timeout)
        close_limit = v.check_seconds("close_timeout", close_timeout)
        if close_limit is None:
            raise ValidationError("close_timeout", "must be a positive number of seconds")
        self._close_timeout = close_limit
        self._backend = backend
        self._observer = observer
        self._inflight: set[asyncio.Task[Any]] = set()
        self._orphans: set[asyncio.Task[Any]] = set()
        self._placer = Placer(backend)
        self._closing: asyncio.Future[None] | None = None
        self._used = False
        # The fast path: await the backend directly, nothing else to do per call.
        self._direct = backend.cancel_safe and self._timeout is None and observer is None
        # Per operation: those the backend declares cancel-safe on their own.
        self._safe_ops = backend.cancel_safe_operations
        self._direct_ops = (
            self._safe_ops if self._timeout is None and observer is None else frozenset()
        )
        # Faster still for an in-process store: its link read and write as plain calls.
        self._instant: InstantLinks | None = (
            backend.instant_links() if self._timeout is None and observer is None else None
        )

    @property
    def backend(self) -> Backend:
        """The backend this executor delegates to."""
        return self._backend

    @property
    def timeout(self) -> float | None:
        """The per-operation timeout in seconds, or None for no limit."""
        return self._timeout

    @property
    def close_timeout(self) -> float:
        """The most seconds `aclose` takes."""
        return self._close_timeout

    @property
    def closed(self) -> bool:
        """True once `aclose` has been called."""
        return self._closing is not None

    def __repr__(self) -> str:
        return f"StatefulExecutor({self._backend!r}, timeout={self._timeout!r})"

    def __del__(self) -> None:
        if getattr(self, "_used", False) and self._closing is None:
            warnings.warn(
                f"unclosed {self!r}: call `await executor.aclose()` or use `async with`",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

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
        """Wait for calls still running, then close the backend, within ``close_timeout``.

        When the bound runs out, calls still running are cancelled, the
        backend's close is cancelled (it then drops its connections), and what
        was abandoned is logged as a warning. Safe to call more than once and
        from several tasks: all return when the close is over.
        """
        if self._closing is None:
            self._direct = False
            self._direct_ops = frozenset()
            self._instant = None
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._close_timeout
        abandoned: list[str] = []
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self._close_timeout)
            for task in pending:
                task.cancel()
                abandoned.append(task.get_name())
        try:
            async with asyncio.timeout_at(deadline):
                await self._backend.aclose()
        except TimeoutError:
            abandoned.append(f"the close of {self._backend!r}")
        if abandoned:
            logger.warning(
                "stateful: aclose() gave up after %s s and abandoned: %s",
                self._close_timeout,
                ", ".join(abandoned),
            )

    # -- plumbing ------------------------------------------------------------------

    async def _run(
        self,
        operation: str,
        namespace: str | None,
        service_name: str | None,
        work: Coroutine[Any, Any, T],
    ) -> T:
        """Await ``work``, the backend's (or placer's) coroutine, as ``operation``.

        ``namespace`` and ``service_name`` are for the observer. The caller
        creates the coroutine (nothing runs until it is awaited), so the fast
        path costs one await and no closure.
        """
        self._used = True
        if self._direct or operation in self._direct_ops:
            try:
                return await work
            except StatefulError:
                raise
            except Exception as exc:
                raise self._wrapped(operation, exc) from exc
        if self._closing is not None:
            # Never started: close it, or Python warns that it was never awaited.
            getattr(work, "close", lambda: None)()
            raise StatefulError(f"{operation}: the executor is closed")
        if self._observer is None:
            return await self._bounded(operation, work)
        finish = self._observer.started(operation, namespace, service_name)
        try:
            result = await self._bounded(operation, work)
        except BaseException as exc:
            finish(exc)
            raise
        finish(None)
        return result

    async def _bounded(self, operation: str, work: Coroutine[Any, Any, T]) -> T:
        if self._backend.cancel_safe or operation in self._safe_ops:
            bounded = self._translated(operation, work)
        else:
            bounded = self._shielded(operation, work)
        if self._timeout is None:
            return await bounded
        state = CallState()
        token = current_call.set(state)
        try:
            async with asyncio.timeout(self._timeout):
                return await bounded
        except TimeoutError as exc:
            if state.waiting_for_connection:
                raise PoolExhausted(
                    f"{operation}: no connection of the pool became free within "
                    f"{self._timeout} s; nothing was sent"
                ) from exc
            raise BackendUnavailable(
                f"{operation}: timed out after {self._timeout} s; the outcome is unknown"
            ) from exc
        finally:
            current_call.reset(token)

    async def _shielded(self, operation: str, work: Coroutine[Any, Any, T]) -> T:
        # The call runs in its own task, so a cancelled caller (or a timeout)
        # cannot interrupt the backend mid-transaction; aclose() waits for it.
        task = asyncio.create_task(self._translated(operation, work), name=f"stateful {operation}")
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            state = current_call.get()
            if state is not None and state.waiting_for_connection and not task.done():
                # Still waiting for a pooled connection: nothing was sent, so
                # stop it here, or it would run later although the caller is
                # told PoolExhausted ("nothing was sent").
                task.cancel()
            elif not task.done():
                self._orphans.add(task)
            raise

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        orphaned = task in self._orphans
        self._orphans.discard(task)
        # Retrieve the exception in any case, so asyncio does not report it as
        # never retrieved; only a caller that left never saw it.
        error = None if task.cancelled() else task.exception()
        if orphaned and error is not None:
            logger.debug("stateful call failed after its caller left", exc_info=error)

    async def _translated(self, operation: str, work: Coroutine[Any, Any, T]) -> T:
        try:
            return await work
        except StatefulError:
            raise
        except Exception as exc:
            raise self._wrapped(operation, exc) from exc

    def _wrapped(self, operation: str, error: Exception) -> BackendError:
        kind = BackendUnavailable if self._backend.is_unavailable(error) else BackendError
        logger.debug("stateful %s failed: %r", operation, error)
        return kind(f"{operation}: {type(error).__name__}: {error}")

    # -- pod and workload states ------------------------------------------------

    async def set_service_state(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        state: str,
        *,
        ttl_seconds: int | None = None,
    ) -> None:
        """Set the state (e.g. ``"ready"``, ``"draining"``) of one pod of a service.

        With ``ttl_seconds`` (1..315360000) the state is a heartbeat: it is
        gone that many seconds later unless set again.
        """
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        pod, st, ttl = v.check_pod_id(pod_id), v.check_state(state), v.check_ttl(ttl_seconds)
        await self._run(
            "set_service_state", ns, svc, self._backend.set_service_state(ns, svc, pod, st, ttl)
        )

    async def get_service_state(self, namespace: str, service_name: str) -> dict[int, str]:
        """Return the live state of every pod of a service that has one, pod id → state."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        return await self._run(
            "get_service_state", ns, svc, self._backend.get_service_state(ns, svc)
        )

    async def remove_service_state(self, namespace: str, service_name: str, pod_id: int) -> bool:
        """Delete one pod's state (e.g. after scale-down); return whether it had a live one."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        pod = v.check_pod_id(pod_id)
        return await self._run(
            "remove_service_state", ns, svc, self._backend.remove_service_state(ns, svc, pod)
        )

    async def set_workload_state(self, namespace: str, service_name: str, state: str) -> None:
        """Set the workload state (e.g. ``"stable"``, ``"updating"``) of a service."""
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        st = v.check_state(state)
        await self._run(
            "set_workload_state", ns, svc, self._backend.set_workload_state(ns, svc, st)
        )

    async def get_workload_state(
        self, namespace: str, service_names: Iterable[str]
    ) -> dict[str, str]:
        """Return the workload state of each listed service that has one."""
        ns = v.check_namespace(namespace)
        names = v.check_unique_strings("service_names", service_names, v.MAX_SERVICE_NAME)
        if not names:
            return {}
        return await self._run(
            "get_workload_state", ns, None, self._backend.get_workload_state(ns, names)
        )

    # -- links ---------------------------------------------------------------------

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        """Link ``uid`` to ``pod_id``: permanently (``-1``) or for N seconds.

        Returns the pod of the live link before the call, or None.
        """
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        if self._instant is not None:
            self._used = True
            try:
                return self._instant.set_linked_pod(ns, u, svc, pod, ttl)
            except StatefulError:
                raise
            except Exception as exc:
                raise self._wrapped("set_linked_pod", exc) from exc
        return await self._run(
            "set_linked_pod", ns, svc, self._backend.set_linked_pod(ns, u, svc, pod, ttl)
        )

    async def try_set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> tuple[bool, int]:
        """Link ``uid`` to ``pod_id`` unless a live permanent link to another pod exists.

        Returns ``(True, pod_id)`` after linking, else ``(False, linked_pod)``
        with nothing changed. A temporary link never blocks.
        """
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        return await self._run(
            "try_set_linked_pod", ns, svc, self._backend.try_set_linked_pod(ns, u, svc, pod, ttl)
        )

    async def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Return the pod of the live link, creating the link to ``pod_id`` if there is none.

        An existing temporary link keeps its pod but gets ``persist_seconds`` as
        its new lifetime (``-1`` makes it permanent); a permanent one is kept.
        """
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_set_persist(persist_seconds)
        return await self._run(
            "set_linked_pod_if_absent",
            ns,
            svc,
            self._backend.set_linked_pod_if_absent(ns, u, svc, pod, ttl),
        )

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        """Return the pod ``uid`` is linked to for the service, or None."""
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        if self._instant is not None:
            self._used = True
            try:
                return self._instant.get_linked_pod(ns, u, svc)
            except StatefulError:
                raise
            except Exception as exc:
                raise self._wrapped("get_linked_pod", exc) from exc
        return await self._run("get_linked_pod", ns, svc, self._backend.get_linked_pod(ns, u, svc))

    async def get_linked_pod_if_persist(
        self, namespace: str, uid: str, service_name: str
    ) -> int | None:
        """Return the linked pod only if the link is permanent, else None."""
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        return await self._run(
            "get_linked_pod_if_persist",
            ns,
            svc,
            self._backend.get_linked_pod_if_persist(ns, u, svc),
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
            "batch_get_linked_pod", ns, svc, self._backend.batch_get_linked_pod(ns, unique, svc)
        )

    async def remove_linked_pod(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int
    ) -> bool:
        """Remove the live link; with ``persist_seconds`` N > 0 keep it N s as temporary.

        ``-1`` or ``0`` delete it. Returns False if there was no live link.
        """
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        ttl = v.check_remove_persist(persist_seconds)
        return await self._run(
            "remove_linked_pod", ns, svc, self._backend.remove_linked_pod(ns, u, svc, ttl)
        )

    async def remove_linked_pod_with_id(
        self, namespace: str, uid: str, service_name: str, persist_seconds: int, pod_id: int
    ) -> bool:
        """As `remove_linked_pod`, but only if the live link points at ``pod_id``."""
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        ttl, pod = v.check_remove_persist(persist_seconds), v.check_pod_id(pod_id)
        return await self._run(
            "remove_linked_pod_with_id",
            ns,
            svc,
            self._backend.remove_linked_pod_with_id(ns, u, svc, ttl, pod),
        )

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """Return the uid's live permanent links, service → pod."""
        ns, u = v.check_namespace(namespace), v.check_uid(uid)
        return await self._run("get_link_service", ns, None, self._backend.get_link_service(ns, u))

    async def get_link_info(self, namespace: str, uid: str, service_name: str) -> LinkInfo | None:
        """Return the live link with its expiry and last update (`LinkInfo`), or None."""
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        return await self._run("get_link_info", ns, svc, self._backend.get_link_info(ns, u, svc))

    # -- pods ----------------------------------------------------------------------

    def pod_links(
        self,
        namespace: str,
        service_name: str,
        pod_id: int,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[str]:
        """Iterate over the uids whose live link points at the pod (``async for``).

        A uid linked there for the whole iteration comes exactly once; a uid
        never comes unless its link pointed there at some instant of it. The
        uids are fetched ``page_size`` at a time, each page one backend call
        under the timeout, so memory stays bounded for any number of links.
        Arguments are checked here, before iterating.
        """
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        pod, size = v.check_pod_id(pod_id), v.check_page_size(page_size)
        return self._walk_pod(ns, svc, pod, size)

    async def _walk_pod(self, ns: str, svc: str, pod: int, size: int) -> AsyncIterator[str]:
        cursor: Cursor = None
        while True:
            uids, cursor = await self._run(
                "pod_links", ns, svc, self._backend.pod_links_page(ns, svc, pod, cursor, size)
            )
            for uid in uids:
                yield uid
            if cursor is None:
                return

    async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
        """Return the number of live links per pod of the service, leaving out pods with none.

        Exact whenever no write runs concurrently.
        """
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        return await self._run("count_pod_links", ns, svc, self._backend.count_pod_links(ns, svc))

    async def remove_pod_links(
        self, namespace: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int:
        """Apply `remove_linked_pod_with_id` to every link of the pod; return how many it removed.

        Each link is removed atomically on its own; a link that moved to
        another pod meanwhile is left alone. With ``persist_seconds`` N > 0
        the links stay N seconds as temporary (users who come back within it
        return to the pod). Runs in pages of `DEFAULT_PAGE_SIZE` links, each
        page one backend call under the timeout.
        """
        ns, svc = v.check_namespace(namespace), v.check_service_name(service_name)
        pod, ttl = v.check_pod_id(pod_id), v.check_remove_persist(persist_seconds)
        removed, cursor = 0, None
        while True:
            count, cursor = await self._run(
                "remove_pod_links",
                ns,
                svc,
                self._backend.remove_pod_links_page(ns, svc, pod, ttl, cursor, DEFAULT_PAGE_SIZE),
            )
            removed += count
            if cursor is None:
                return removed

    async def place_linked_pod(
        self,
        namespace: str,
        uid: str,
        service_name: str,
        persist_seconds: int,
        *,
        states: Iterable[str] = PLACE_STATES,
    ) -> int | None:
        """Return the uid's pod, linking a new user to the least-loaded pod in ``states``.

        A live link is kept (a temporary one refreshed as by
        `set_linked_pod_if_absent`) and its pod returned. Otherwise the uid is
        linked to the pod whose live state is in ``states`` with the fewest
        live links (ties: lowest pod id), and that pod is returned; None when
        no pod qualifies. The link itself is created atomically: concurrent
        callers for one uid all get the same pod.
        """
        ns, u, svc = v.check_link_key(namespace, uid, service_name)
        ttl = v.check_set_persist(persist_seconds)
        if states is PLACE_STATES:  # the default: checked once, below
            wanted = _PLACE_STATES_SET
        else:
            wanted = frozenset(v.check_unique_strings("states", states, v.MAX_STATE))
        return await self._run(
            "place_linked_pod", ns, svc, self._placer.place(ns, u, svc, ttl, wanted)
        )
