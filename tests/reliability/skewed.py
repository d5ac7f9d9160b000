"""A child process whose wall clock is off by ``skew_s`` seconds, making recorded calls.

    python -m tests.reliability.skewed '<config JSON>'

``time.time`` and ``time.time_ns`` are shifted before `stateful` is imported,
so the process's `stateful.SystemClock` reads the skewed time, as an app
server with a wrong clock would. The child connects WITHOUT an explicit
clock (the store's default), makes ``config["calls"]`` in order and prints
``{"clock_ms": <its SystemClock reading>, "history": <History JSON>}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any


def shift_clock(skew_s: float) -> None:
    """Make this process's wall clock read ``skew_s`` seconds off."""
    real_ns, real = time.time_ns, time.time
    offset_ns = round(skew_s * 1e9)
    time.time_ns = lambda: real_ns() + offset_ns
    time.time = lambda: real() + skew_s


async def run(config: dict[str, Any]) -> dict[str, Any]:
    """Connect with the store's default clock and make the configured calls."""
    import stateful
    from stateful.testing.history import HistoryRecorder

    executor = stateful.connect(config["url"], **config["options"])
    recorder = HistoryRecorder(executor, client=f"skewed{config['skew_s']:+}")
    try:
        for name, args in config["calls"]:
            await recorder.call(name, *args)
    finally:
        await executor.aclose()
    return {"clock_ms": stateful.SystemClock().now_ms(), "history": recorder.history.to_json()}


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    shift_clock(settings["skew_s"])
    sys.stdout.write(json.dumps(asyncio.run(run(settings))))
    sys.stdout.flush()
    os._exit(0)
