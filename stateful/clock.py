"""Clocks: where backends that keep their own time read "now" from."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock time in integer milliseconds since the Unix epoch."""

    def now_ms(self) -> int:
        """Return the current time in milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The machine's wall clock (`time.time_ns`)."""

    def now_ms(self) -> int:
        """Return the system time in milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to; for tests and simulations.

    It starts at ``start_ms`` or, if that is ``None``, at the current system time.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._now_ms = SystemClock().now_ms() if start_ms is None else int(start_ms)

    def now_ms(self) -> int:
        """Return the clock's current time in milliseconds."""
        return self._now_ms

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (rounded to the millisecond)."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward")
        self._now_ms += round(seconds * 1000)

    def advance_ms(self, milliseconds: int) -> None:
        """Move the clock forward by a whole number of milliseconds."""
        if milliseconds < 0:
            raise ValueError("a ManualClock only moves forward")
        self._now_ms += milliseconds

    def __repr__(self) -> str:
        return f"ManualClock(start_ms={self._now_ms})"
