"""The executor's own duties: timeouts, cancellation, error wrapping, lifecycle."""

from __future__ import annotations

import asyncio

import pytest

import stateful
from stateful import BackendError, BackendUnavailable, StatefulError, StatefulExecutor
from stateful.backend import InstantLinks
from stateful.backends.memory import MemoryBackend


class SlowBackend(MemoryBackend):
    """Takes ``delay`` seconds inside set_linked_pod before writing."""

    cancel_safe = False  # it awaits before writing, so the executor must shield it

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.closed = False

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        await asyncio.sleep(self.delay)
        return await super().set_linked_pod(namespace, uid, service_name, pod_id, persist_seconds)

    async def aclose(self) -> None:
        self.closed = True


class FailingBackend(MemoryBackend):
    """Raises ``error`` from get_linked_pod."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        raise self.error


async def test_timeout_raises_backend_unavailable_and_the_write_still_completes() -> None:
    backend = SlowBackend(delay=0.2)
    ex = StatefulExecutor(backend, timeout=0.01)
    with pytest.raises(BackendUnavailable, match=r"timed out after 0\.01 s") as caught:
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)
    assert isinstance(caught.value.__cause__, TimeoutError)
    # The call was not interrupted half-way: it lands, and aclose waits for it.
    await ex.aclose()
    assert backend.closed
    assert await backend.get_linked_pod("ns", "u", "svc") == 1


async def test_cancelled_caller_leaves_the_store_fully_after_the_call() -> None:
    backend = SlowBackend(delay=0.05)
    ex = StatefulExecutor(backend)
    call = asyncio.create_task(ex.set_linked_pod("ns", "u", "svc", 1, -1))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await ex.aclose()
    assert await backend.get_linked_pod("ns", "u", "svc") == 1


async def test_cancel_safe_backend_is_awaited_directly_and_timeout_interrupts_it() -> None:
    class InlineSlowBackend(SlowBackend):
        cancel_safe = True

    backend = InlineSlowBackend(delay=0.2)
    ex = StatefulExecutor(backend, timeout=0.01)
    with pytest.raises(BackendUnavailable, match="timed out"):
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)
    await ex.aclose()
    # no background task: the call was interrupted before it wrote
    assert await backend.get_linked_pod("ns", "u", "svc") is None


async def test_timeout_is_honoured_even_if_the_driver_swallows_cancellation() -> None:
    class StubbornBackend(SlowBackend):
        """Like redis-py at times: a cancelled call runs on and returns normally."""

        async def set_linked_pod(
            self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
        ) -> int | None:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                await asyncio.sleep(self.delay)
            return await MemoryBackend.set_linked_pod(
                self, namespace, uid, service_name, pod_id, persist_seconds
            )

    backend = StubbornBackend(delay=0.1)
    ex = StatefulExecutor(backend, timeout=0.01)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(BackendUnavailable, match="timed out"):
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)
    assert loop.time() - start < 0.09, "the caller waited for the stubborn call"
    await ex.aclose()
    assert await backend.get_linked_pod("ns", "u", "svc") == 1


async def test_no_timeout_by_default() -> None:
    ex = StatefulExecutor(SlowBackend(delay=0.02))
    assert ex.timeout is None
    assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError("refused"), BackendUnavailable),
        (TimeoutError("driver timeout"), BackendUnavailable),
        (RuntimeError("disk full"), BackendError),
        (KeyError("weird"), BackendError),
    ],
)
async def test_driver_errors_are_wrapped_with_the_cause(
    error: Exception, kind: type[BackendError]
) -> None:
    ex = StatefulExecutor(FailingBackend(error))
    with pytest.raises(kind) as caught:
        await ex.get_linked_pod("ns", "u", "svc")
    assert type(caught.value) is kind
    assert caught.value.__cause__ is error
    assert "get_linked_pod" in str(caught.value)


async def test_stateful_errors_from_the_backend_pass_through() -> None:
    error = stateful.SchemaError("run: stateful migrate URL")
    ex = StatefulExecutor(FailingBackend(error))
    with pytest.raises(stateful.SchemaError) as caught:
        await ex.get_linked_pod("ns", "u", "svc")
    assert caught.value is error


async def test_closed_executor_refuses_calls_and_close_is_idempotent() -> None:
    backend = SlowBackend(delay=0)
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)
    assert backend.closed
    await ex.aclose()
    with pytest.raises(StatefulError, match="closed"):
        await ex.get_linked_pod("ns", "u", "svc")


async def test_the_memory_fast_path_keeps_the_executors_duties() -> None:
    """Link reads and writes of `memory://` skip the coroutines, not the rules."""

    class BrokenInstant(MemoryBackend):
        def instant_links(self) -> InstantLinks:
            def fail(*args: object) -> int | None:
                raise KeyError("lost")

            return InstantLinks(get_linked_pod=fail, set_linked_pod=fail)

    assert MemoryBackend().instant_links() is not None
    assert SlowBackend(delay=0).instant_links() is None, "an override must not be bypassed"
    broken = StatefulExecutor(BrokenInstant())
    for call in (
        broken.get_linked_pod("ns", "u", "svc"),
        broken.set_linked_pod("ns", "u", "svc", 1, -1),
    ):
        with pytest.raises(BackendError, match="KeyError") as caught:
            await call
        assert isinstance(caught.value.__cause__, KeyError)
    await broken.aclose()
    # With a timeout or an observer, calls go through the coroutines again.
    bounded = StatefulExecutor(BrokenInstant(), timeout=1)
    assert await bounded.get_linked_pod("ns", "u", "svc") is None
    await bounded.aclose()
    ex = StatefulExecutor(MemoryBackend())
    assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
    assert await ex.get_linked_pod("ns", "u", "svc") == 1
    await ex.aclose()
    with pytest.raises(StatefulError, match="closed"):
        await ex.get_linked_pod("ns", "u", "svc")
    with pytest.raises(StatefulError, match="closed"):
        await ex.set_linked_pod("ns", "u", "svc", 2, -1)


async def test_a_temporary_link_reads_as_gone_at_its_expiry_instant() -> None:
    clock = stateful.ManualClock(start_ms=1_000_000)
    backend = MemoryBackend(clock=clock)
    ex = StatefulExecutor(backend)
    await ex.set_linked_pod("ns", "u", "svc", 4, 5)
    clock.advance_ms(4_999)
    assert await ex.get_linked_pod("ns", "u", "svc") == 4
    clock.advance_ms(1)
    # Still in the dict (only writes drop dead links), but dead to the read.
    assert await ex.get_linked_pod("ns", "u", "svc") is None
    assert await ex.set_linked_pod("ns", "u", "svc", 5, -1) is None
    await ex.aclose()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(stateful.ValidationError, match="timeout") as caught:
        StatefulExecutor(MemoryBackend(), timeout=timeout)
    assert caught.value.argument == "timeout"
    with pytest.raises(stateful.ValidationError, match="close_timeout"):
        StatefulExecutor(MemoryBackend(), close_timeout=timeout)


class HangingBackend(SlowBackend):
    """Its calls never finish, and neither does its close."""

    async def set_linked_pod(
        self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
    ) -> int | None:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await asyncio.Event().wait()


async def test_aclose_is_bounded_and_logs_what_it_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex = StatefulExecutor(HangingBackend(delay=0), timeout=0.05, close_timeout=0.3)
    with pytest.raises(BackendUnavailable):
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)  # left running in the background
    loop = asyncio.get_running_loop()
    start = loop.time()
    with caplog.at_level("WARNING", logger="stateful"):
        await ex.aclose()
    took = loop.time() - start
    assert 0.25 < took < 1.0
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "abandoned" in message
    assert "stateful set_linked_pod" in message  # the call still running
    assert "the close of MemoryBackend" in message  # and the backend's own close


async def test_concurrent_aclose_calls_all_wait_for_the_one_close() -> None:
    backend = SlowBackend(delay=0.1)
    ex = StatefulExecutor(backend)
    call = asyncio.create_task(ex.set_linked_pod("ns", "u", "svc", 1, -1))
    await asyncio.sleep(0.01)
    await asyncio.gather(ex.aclose(), ex.aclose())
    assert backend.closed
    assert ex.closed
    assert await call is None


class PoolWaitingBackend(SlowBackend):
    """Waits for a "connection" that never frees, inside waiting_for_connection()."""

    async def get_linked_pod(self, namespace: str, uid: str, service_name: str) -> int | None:
        with stateful.backend.waiting_for_connection():
            await asyncio.sleep(self.delay)
        return await super().get_linked_pod(namespace, uid, service_name)


async def test_timeout_while_waiting_for_a_connection_is_pool_exhausted() -> None:
    ex = StatefulExecutor(PoolWaitingBackend(delay=1.0), timeout=0.05)
    with pytest.raises(stateful.PoolExhausted, match="nothing was sent") as caught:
        await ex.get_linked_pod("ns", "u", "svc")
    assert isinstance(caught.value, BackendUnavailable)
    # Past the pool wait, a timeout is the usual "outcome unknown".
    slow = StatefulExecutor(SlowBackend(delay=1.0), timeout=0.05)
    with pytest.raises(BackendUnavailable) as late:
        await slow.set_linked_pod("ns", "u", "svc", 1, -1)
    assert not isinstance(late.value, stateful.PoolExhausted)
    await asyncio.gather(ex.aclose(), slow.aclose())


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, str | None, str]] = []

    def started(
        self, operation: str, namespace: str | None, service_name: str | None
    ) -> stateful.executor.Finish:
        def finish(error: BaseException | None) -> None:
            outcome = "ok" if error is None else type(error).__name__
            self.events.append((operation, namespace, service_name, outcome))

        return finish


async def test_observer_sees_every_operation_and_its_outcome() -> None:
    observer = RecordingObserver()
    async with StatefulExecutor(MemoryBackend(), observer=observer) as ex:
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)
        await ex.get_link_service("ns", "u")
        with pytest.raises(stateful.ValidationError):
            await ex.get_linked_pod("ns", "", "svc")  # refused before the observer hears of it
    failing = StatefulExecutor(FailingBackend(RuntimeError("x")), observer=observer)
    with pytest.raises(BackendError):
        await failing.get_linked_pod("ns", "u", "svc")
    await failing.aclose()
    assert observer.events == [
        ("set_linked_pod", "ns", "svc", "ok"),
        ("get_link_service", "ns", None, "ok"),
        ("get_linked_pod", "ns", "svc", "BackendError"),
    ]


def test_an_executor_used_and_never_closed_warns() -> None:
    async def use() -> None:
        ex = StatefulExecutor(MemoryBackend())
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)

    with pytest.warns(ResourceWarning, match="unclosed StatefulExecutor"):
        asyncio.run(use())
        import gc

        gc.collect()


async def test_failures_are_logged_as_orphaned_only_when_the_caller_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class FailingSlowBackend(SlowBackend):
        async def set_linked_pod(
            self, namespace: str, uid: str, service_name: str, pod_id: int, persist_seconds: int
        ) -> int | None:
            await asyncio.sleep(self.delay)
            raise RuntimeError("store broke")

    ex = StatefulExecutor(FailingSlowBackend(delay=0.01))
    with caplog.at_level("DEBUG", logger="stateful"), pytest.raises(BackendError):
        await ex.set_linked_pod("ns", "u", "svc", 1, -1)  # the caller waited: no orphan log
    assert not any("after its caller left" in r.getMessage() for r in caplog.records)
    call = asyncio.create_task(ex.set_linked_pod("ns", "u", "svc", 1, -1))
    await asyncio.sleep(0)
    call.cancel()
    with caplog.at_level("DEBUG", logger="stateful"):
        await ex.aclose()
    assert any("after its caller left" in r.getMessage() for r in caplog.records)


async def test_concurrent_tasks_on_the_memory_backend_have_exactly_one_winner() -> None:
    async with stateful.connect("memory://") as ex:
        for round_ in range(20):
            uid = f"u{round_}"
            results = await asyncio.gather(
                *(ex.set_linked_pod_if_absent("ns", uid, "svc", pod, -1) for pod in range(50))
            )
            assert len(set(results)) == 1
            tries = await asyncio.gather(
                *(ex.try_set_linked_pod("ns", f"t{round_}", "svc", pod, -1) for pod in range(50))
            )
            winners = [pod for ok, pod in tries if ok]
            assert winners == [0]
            assert all(pod == 0 for _, pod in tries)


def test_the_list_of_backend_operations_is_complete() -> None:
    from stateful.backend import OPERATIONS, Backend

    public = {
        name
        for name, value in vars(Backend).items()
        if callable(value)
        and not name.startswith("_")
        and name not in ("aclose", "is_unavailable", "instant_links")
    }
    assert set(OPERATIONS) == public


async def test_a_placement_landing_during_a_count_is_not_counted_twice() -> None:
    class SlowCounts(MemoryBackend):
        """Counts take 50 ms and placement writes 20 ms, so they would overlap."""

        async def count_pod_links(self, namespace: str, service_name: str) -> dict[int, int]:
            await asyncio.sleep(0.05)
            return await super().count_pod_links(namespace, service_name)

        async def place_linked_pod(
            self,
            namespace: str,
            uid: str,
            service_name: str,
            persist_seconds: int,
            pod_id: int | None,
        ) -> int | None:
            if pod_id is not None:
                await asyncio.sleep(0.02)
            return await super().place_linked_pod(
                namespace, uid, service_name, persist_seconds, pod_id
            )

    ex = StatefulExecutor(SlowCounts())
    for pod in (0, 1):
        await ex.set_service_state("ns", "svc", pod, "ready")
    await ex.set_linked_pod("ns", "old", "svc", 1, -1)
    first = asyncio.create_task(ex.place_linked_pod("ns", "a", "svc", -1))
    await asyncio.sleep(0.055)  # a's count is read (pod 0 chosen); its write is under way
    # b's count must not run while a's write lands: a would be in the count and
    # pending at once, pod 0 would weigh 2, and b would go to pod 1.
    assert await ex.place_linked_pod("ns", "b", "svc", -1) == 0
    assert await first == 0
    assert await ex.count_pod_links("ns", "svc") == {0: 2, 1: 1}
    await ex.aclose()
