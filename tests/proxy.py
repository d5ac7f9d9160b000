"""A loopback TCP proxy to a real server, for tests that break the link on purpose.

Shared test machinery: the one place the suite builds such a proxy. It can
freeze (hold every byte from then on: a server that hangs), cut every
proxied connection at once (the connections are lost), or cut a connection
when the next reply comes back (the command ran; its reply is lost).
"""

from __future__ import annotations

import asyncio


class LoopbackProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:``target`` once started."""

    def __init__(self, target: int) -> None:
        """Forward to 127.0.0.1:``target``."""
        self.target = target
        self.frozen = asyncio.Event()
        #: Set to lose the next reply from the server: the connection is cut instead.
        self.cut_next_reply = False
        self.replies_cut = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> LoopbackProxy:
        """Listen on a free port."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]
        for source, sink, replies in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(self._pipe(source, sink, replies, (writer, up_writer)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        replies: bool,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        while data := await source.read(65536):
            if self.frozen.is_set():
                await asyncio.Event().wait()  # hold the bytes forever
            if replies and self.cut_next_reply:
                self.cut_next_reply = False
                self.replies_cut += 1
                for end in pair:
                    end.transport.abort()
                return
            sink.write(data)
            await sink.drain()

    def cut(self) -> None:
        """Close every proxied connection at once (the connections are lost)."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        """Close everything."""
        for task in list(self.tasks):
            task.cancel()
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
