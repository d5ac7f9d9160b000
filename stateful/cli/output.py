"""What the commands print: plain tables for people, JSON for scripts, and exit codes."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

# Exit codes (docs/cli.md, "Exit codes").
OK = 0
NOT_FOUND = 1  # absent link or state, refused write
USAGE = 2  # bad arguments, unknown URL scheme, missing extra
UNAVAILABLE = 3  # the store could not be reached or failed


class CommandFailed(Exception):
    """Ends a command with ``code`` after printing ``message`` on stderr as one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Output:
    """Writes a command's result: a table (default) or one JSON document (``--json``)."""

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None):
        """Write results to ``out`` (stdout) and notes and warnings to ``err`` (stderr)."""
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    def json(self, document: Any) -> None:
        """Print ``document`` as one line of JSON."""
        print(json.dumps(document, ensure_ascii=False), file=self.out)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Print left-aligned columns under upper-case headers."""
        cells = [[str(h).upper() for h in headers], *[[str(c) for c in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            print(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                file=self.out,
            )

    def line(self, text: str) -> None:
        """Print one line of human-readable result."""
        print(text, file=self.out)

    def note(self, text: str) -> None:
        """Print a note or warning for the operator on stderr."""
        print(f"stateful: {text}", file=self.err)


def now_ms() -> int:
    """Return this machine's clock in ms (to show how long a link has left)."""
    return time.time_ns() // 1_000_000


def duration(ms: int) -> str:
    """Format a duration as operators read it: ``29s``, ``4m05s``, ``2h03m``, ``3d04h``.

    Rounded up to the second, so a link that is still live never shows ``0s``.
    """
    seconds = max(0, math.ceil(ms / 1000))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def ttl_left(expires_at_ms: int | None, now: int | None = None) -> str:
    """Show a link's or state's remaining life: ``permanent`` or a `duration`."""
    if expires_at_ms is None:
        return "permanent"
    return duration(expires_at_ms - (now_ms() if now is None else now))


def timestamp(ms: int) -> str:
    """Format a store time (ms since the epoch) as UTC: ``2026-11-28 02:10:05Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ttl_words(ttl_seconds: int | None) -> str:
    """Describe a requested lifetime: ``permanent`` or ``for 30s``."""
    return "permanent" if ttl_seconds is None else f"for {duration(ttl_seconds * 1000)}"
