"""A script whose reply is lost is never sent again: its answer would describe a second run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stateful import BackendUnavailable, StatefulExecutor
from tests.redis_backend.scratch import scratch_backend


class ReplyCuttingProxy:
    """Forwards to a real Redis; when armed, drops the next reply and cuts the connection."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.armed = False
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> ReplyCuttingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if self.armed:  # the command ran on the server; its reply is lost
                    self.armed = False
                    self.cuts += 1
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[ReplyCuttingProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    running = await ReplyCuttingProxy(port).start()
    yield running
    await running.stop()


async def test_a_write_whose_reply_is_lost_is_reported_unknown_not_answered_twice(
    proxy: ReplyCuttingProxy,
) -> None:
    ex = StatefulExecutor(scratch_backend(f"redis://127.0.0.1:{proxy.port}/0"))
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        proxy.armed = True
        # Sent again after the lost reply, the script would answer 2 (its own
        # first run) where the truth before this call was 1.
        with pytest.raises(BackendUnavailable):
            await ex.set_linked_pod("ns", "u", "svc", 2, -1)
        assert proxy.cuts == 1
        assert await ex.get_linked_pod("ns", "u", "svc") == 2  # it ran once, and recovered
        assert await ex.set_linked_pod("ns", "u", "svc", 3, -1) == 2
    finally:
        await ex.aclose()
