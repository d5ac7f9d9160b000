"""A stalled server: accepts TCP connections on loopback and never answers.

The worst peer a client can meet: connecting succeeds at once, then nothing
comes back, neither a greeting (PostgreSQL, MariaDB wait for one during the
handshake) nor a reply. Shared test machinery: the one place the suite builds
such a server.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self


class StalledServer:
    """Listens on 127.0.0.1, accepts every connection, reads nothing and writes nothing.

    Use as a context manager; `port` is where it listens and `accepted`
    counts the connections it took. Closing it drops every connection.
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="stalled-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            # Held open, never read: the client waits for an answer that never comes.
            self._connections.append(connection)
            self.accepted += 1

    def still_open(self) -> int:
        """How many accepted connections the client has not closed (reads and drops their bytes)."""
        open_count = 0
        for connection in list(self._connections):
            connection.setblocking(False)
            try:
                while connection.recv(65536):
                    pass
            except BlockingIOError:
                open_count += 1  # no end of stream: the client still holds it
            except OSError:
                pass  # reset by the client: closed
        return open_count

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for connection in self._connections:
            connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
