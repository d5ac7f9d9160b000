"""A script whose reply is lost is never sent again: its answer would describe a second run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stateful import BackendUnavailable, StatefulExecutor
from tests.proxy import LoopbackProxy
from tests.redis_backend.scratch import scratch_backend


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LoopbackProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    running = await LoopbackProxy(port).start()
    yield running
    await running.stop()


async def test_a_write_whose_reply_is_lost_is_reported_unknown_not_answered_twice(
    proxy: LoopbackProxy,
) -> None:
    ex = StatefulExecutor(scratch_backend(f"redis://127.0.0.1:{proxy.port}/0"))
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        proxy.cut_next_reply = True
        # Sent again after the lost reply, the script would answer 2 (its own
        # first run) where the truth before this call was 1.
        with pytest.raises(BackendUnavailable):
            await ex.set_linked_pod("ns", "u", "svc", 2, -1)
        assert proxy.replies_cut == 1
        assert await ex.get_linked_pod("ns", "u", "svc") == 2  # it ran once, and recovered
        assert await ex.set_linked_pod("ns", "u", "svc", 3, -1) == 2
    finally:
        await ex.aclose()
