"""No unbounded wait: against a server that accepts connections and never answers.

With ``timeout=2`` every call must end with `BackendUnavailable` within the
timeout plus a small margin, and `StatefulExecutor.aclose` must return within
its bound: 10 s by default, or the configured ``close_timeout``, logging a
WARNING when it had to abandon something. Each test prints the measured times.
Calls that timed out leave work behind (the executor's background tasks, the
drivers' half-open connections), which is exactly what `aclose` must cut short.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from stateful import BackendUnavailable, StatefulExecutor
from stateful.registry import backend_factory
from tests.faults.stalled import StalledServer

TIMEOUT = 2.0
#: Scheduling slack on a loaded 2-core machine.
MARGIN = 1.5
#: `StatefulExecutor`'s default bound for `aclose` (SPEC, Guarantees).
DEFAULT_CLOSE_BOUND = 10.0
CONFIGURED_CLOSE_BOUND = 3.0
CALLS = 8
#: Seconds past its bound after which the test stops waiting for aclose.
GIVE_UP_AFTER = 10.0

URLS = {
    "redis": "redis://127.0.0.1:{port}/0",
    "redis-cluster": "redis+cluster://127.0.0.1:{port}",
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres",
    "mariadb": "mysql+asyncmy://root@127.0.0.1:{port}/mysql",
}


def _executor(url: str, close_timeout: float | None) -> StatefulExecutor:
    backend = backend_factory(url)(url, clock=None)
    if close_timeout is None:
        return StatefulExecutor(backend, timeout=TIMEOUT)
    return StatefulExecutor(backend, timeout=TIMEOUT, close_timeout=close_timeout)


async def _timed(call: asyncio.Future[object] | object) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        assert asyncio.iscoroutine(call)
        await call
    except BaseException as exc:  # the outcome is the point: recorded, checked by the caller
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


async def _stalled_round(name: str, close_timeout: float | None) -> tuple[float, float, int]:
    """Calls then `aclose` against a stalled server; return (slowest call, aclose, accepted)."""
    with StalledServer() as server:
        executor = _executor(URLS[name].format(port=server.port), close_timeout)
        ns = "stalled"
        calls = [
            executor.get_linked_pod(ns, f"u{n}", "game")
            if n % 2
            else executor.set_linked_pod(ns, f"u{n}", "game", n, -1)
            for n in range(CALLS)
        ]
        results = await asyncio.gather(*(_timed(call) for call in calls))
        slowest = max(seconds for seconds, _ in results)
        for seconds, error in results:
            assert isinstance(error, BackendUnavailable), (
                f"{name}: a call against a stalled server ended with {error!r}, "
                "not BackendUnavailable"
            )
            assert seconds <= TIMEOUT + MARGIN, f"{name}: a call took {seconds:.2f} s"
        bound = DEFAULT_CLOSE_BOUND if close_timeout is None else close_timeout
        started = time.monotonic()
        try:
            # The test itself never waits without bound: past this, aclose failed.
            async with asyncio.timeout(bound + GIVE_UP_AFTER):
                await executor.aclose()
        except TimeoutError:
            print(f"[stalled] {name}: aclose still running {bound + GIVE_UP_AFTER} s in: gave up")
        closing = time.monotonic() - started
        # aclose drops its connections, also those stuck in a handshake.
        await asyncio.sleep(0.2)
        left = server.still_open()
        assert left == 0, f"{name}: {left} connections to the stalled server left open by aclose"
        return slowest, closing, server.accepted


@pytest.mark.parametrize("name", list(URLS))
async def test_calls_and_aclose_end_within_their_bounds(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="stateful")
    slowest, closing, accepted = await _stalled_round(name, CONFIGURED_CLOSE_BOUND)
    print(
        f"[stalled] {name}: {CALLS} calls with timeout={TIMEOUT}: slowest {slowest:.2f} s; "
        f"aclose(close_timeout={CONFIGURED_CLOSE_BOUND}) {closing:.2f} s; "
        f"connections accepted {accepted}"
    )
    assert accepted > 0, "the client never reached the stalled server"
    assert closing <= CONFIGURED_CLOSE_BOUND + MARGIN, (
        f"{name}: aclose took {closing:.2f} s, bound {CONFIGURED_CLOSE_BOUND} s"
    )
    if closing >= CONFIGURED_CLOSE_BOUND:
        # It ran into its bound, so it abandoned something, and must say what.
        assert any(r.levelno == logging.WARNING for r in caplog.records), (
            f"{name}: aclose hit its bound without logging a WARNING"
        )


async def test_aclose_default_bound_on_every_server_backend() -> None:
    # The backends run side by side: one default bound of waiting, not four.
    names = list(URLS)
    rounds = await asyncio.gather(*(_stalled_round(name, None) for name in names))
    for name, (slowest, closing, accepted) in zip(names, rounds, strict=True):
        print(
            f"[stalled] {name}: slowest call {slowest:.2f} s; aclose (default bound) "
            f"{closing:.2f} s; connections accepted {accepted}"
        )
    late = {
        name: round(closing, 2)
        for name, (_, closing, _) in zip(names, rounds, strict=True)
        if closing > DEFAULT_CLOSE_BOUND + MARGIN
    }
    assert not late, f"aclose outlasted its default bound of {DEFAULT_CLOSE_BOUND} s: {late}"
