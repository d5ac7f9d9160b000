"""Helpers shared by the test folders: free ports, and skip-or-fail for missing servers."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def server_missing(reason: str) -> NoReturn:
    """Skip the test locally, but fail it under ``CI=true``: CI never skips silently."""
    if IN_CI:
        pytest.fail(f"CI=true and a required server is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
