"""Count what Redis receives from one client, using MONITOR on every node.

`CommandLog.take` returns the commands that connections named ``client_name``
sent since the previous call, each with the commands its script ran inside
Redis (MONITOR lists those as ``lua`` right after the EVALSHA/EVAL line). A
marker ``ECHO`` sent after the operation tells where the operation ends, and
connections are recognised by name, so other users of a shared server do not
disturb the count.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from redis.asyncio import Redis

# +<time> [<db> <client address or "lua">] "<arg>" "<arg>" …
_LINE = re.compile(rb'^\+\S+ \[\d+ (\S+)\] (.*)$')
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')


@dataclass
class Received:
    """One command a node received from the watched client."""

    port: int
    name: str  # upper-case command name, e.g. "EVALSHA"
    args: list[str]  # the rest, as MONITOR escapes them
    inner: list[str] = field(default_factory=list)  # commands its script ran


class _RawMonitor:
    """A MONITOR session on its own socket; batch commands make very long lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _RawMonitor:
        reader, writer = await asyncio.open_connection(host, port, limit=2**26)
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        assert await reader.readline() == b"+OK\r\n"
        return cls(reader, writer)

    async def next(self) -> tuple[str, list[str]]:
        """Return the client address (or "lua") and the arguments of the next command."""
        line = (await self.reader.readline()).rstrip(b"\r\n")
        match = _LINE.match(line)
        assert match, line[:200]
        args = [a.decode("utf-8", "replace") for a in _ARG.findall(match.group(2))]
        return match.group(1).decode(), args

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class CommandLog:
    """MONITOR sessions on a list of nodes, watching connections named ``client_name``."""

    def __init__(self, ports: list[int], client_name: str, host: str = "127.0.0.1") -> None:
        self.host = host
        self.ports = ports
        self.client_name = client_name
        self._admins = {port: Redis(host=host, port=port) for port in ports}
        self._monitors: dict[int, _RawMonitor] = {}

    async def __aenter__(self) -> Self:
        for port in self.ports:
            self._monitors[port] = await _RawMonitor.open(self.host, port)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for monitor in self._monitors.values():
            await monitor.close()
        for admin in self._admins.values():
            await admin.aclose()

    async def take(self) -> list[Received]:
        """Return what the watched client sent since the last call, on every node."""
        received: list[Received] = []
        for port in self.ports:
            received.extend(await self._take_from(port))
        return received

    async def _take_from(self, port: int) -> list[Received]:
        admin = self._admins[port]
        watched = {
            entry["addr"]
            for entry in await admin.client_list()
            if entry.get("name") == self.client_name
        }
        marker = uuid.uuid4().hex
        await admin.echo(marker)
        received: list[Received] = []
        last_watched = False
        while True:
            address, args = await self._monitors[port].next()
            if [a.upper() for a in args[:1]] == ["ECHO"] and args[1:] == [marker]:
                return received
            if address == "lua":
                # A script's commands follow its EVALSHA line, uninterrupted.
                if last_watched:
                    received[-1].inner.append(args[0].upper())
                continue
            last_watched = address in watched
            if last_watched:
                received.append(Received(port, args[0].upper(), args[1:]))
