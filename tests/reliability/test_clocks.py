"""One clock per store: app servers whose clocks disagree by minutes agree on what is live.

Child processes with their wall clock shifted by -5 and +5 minutes
(`tests.reliability.skewed`) share a store with this process, all on the
store's default clock. On Redis (the server's clock), PostgreSQL and MariaDB
(the database server's clock) they must agree: a 60 s link made by one is
live for the others, and its expiry instant is the same for all, within the
few seconds the test itself takes. SQLite reads each process's system clock
(SPEC, Time): it is the control that shows the skew is real and would be
seen.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import stateful
from stateful.records import LinkInfo
from stateful.testing.history import History
from tests.reliability.conftest import Target

REPO = Path(__file__).resolve().parents[2]
SKEW_S = 300.0
TTL_S = 60
SLACK_MS = 15_000  # the test's own duration, generously


async def in_skewed_process(
    target: Target, skew_s: float, calls: list[Any]
) -> tuple[int, list[Any]]:
    """Run ``calls`` in a child whose clock is ``skew_s`` off; return its clock and answers."""
    config = {"url": target.url, "options": target.options, "skew_s": skew_s, "calls": calls}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.skewed",
        json.dumps(config),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await child.communicate()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    history = History.from_json(report["history"])
    assert all(op.outcome == "ok" for op in history), [op.describe() for op in history]
    return report["clock_ms"], [op.result for op in history]


@pytest.mark.parametrize("skew_s", [-SKEW_S, SKEW_S])
async def test_skewed_app_servers_agree_on_what_is_live(target: Target, skew_s: float) -> None:
    ns = f"clock-{uuid.uuid4().hex[:8]}"
    mine, theirs = (ns, "mine", "svc"), (ns, "theirs", "svc")
    executor = stateful.connect(target.url, **target.options)
    try:
        before = time.time_ns() // 1_000_000
        await executor.set_linked_pod(*mine, 1, TTL_S)
        child_clock, answers = await in_skewed_process(
            target,
            skew_s,
            [
                ["get_linked_pod", list(mine)],
                ["get_link_info", list(mine)],
                ["set_linked_pod", [*theirs, 2, TTL_S]],
            ],
        )
        after = time.time_ns() // 1_000_000
        # The child's clock really was off by the skew.
        assert abs(child_clock - after - skew_s * 1000) < SLACK_MS
        seen_by_child, info_seen_by_child = answers[0], answers[1]
        info_mine = await executor.get_link_info(*mine)
        info_theirs = await executor.get_link_info(*theirs)
    finally:
        await executor.aclose()

    print(
        f"\n[clocks] {target.name}, child clock {skew_s:+.0f} s: child sees my {TTL_S} s link: "
        f"{seen_by_child is not None}; their link expires "
        f"{_offset(info_theirs, after)} from my clock"
    )
    if target.name == "sqlite":
        # Control: each process reads its own system clock, so they disagree.
        if skew_s > 0:
            assert seen_by_child is None, "a clock 5 min ahead must see the 60 s link expired"
        assert info_theirs is None or _offset_ms(info_theirs, after) > TTL_S * 1000 + SLACK_MS
        return
    assert seen_by_child == 1
    assert isinstance(info_seen_by_child, LinkInfo)
    assert info_mine is not None and info_seen_by_child.expires_at_ms == info_mine.expires_at_ms
    # Both links expire TTL_S after they were made, on one clock: within this test's span.
    for info in (info_mine, info_theirs):
        assert info is not None and info.expires_at_ms is not None
        assert (
            before + TTL_S * 1000 - SLACK_MS
            <= info.expires_at_ms
            <= after + TTL_S * 1000 + SLACK_MS
        )


def _offset_ms(info: LinkInfo | None, now_ms: int) -> int:
    assert info is not None and info.expires_at_ms is not None
    return info.expires_at_ms - now_ms


def _offset(info: LinkInfo | None, now_ms: int) -> str:
    if info is None:
        return "never (already expired)"
    return f"{_offset_ms(info, now_ms) / 1000:+.1f} s"
