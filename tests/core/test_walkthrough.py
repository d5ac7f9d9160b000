"""The walk-through behind ``stateful demo`` (the README's first command) works."""

from __future__ import annotations

import pytest

from stateful.walkthrough import walkthrough


async def test_walkthrough_routes_users_and_moves_them_off_a_draining_pod(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await walkthrough("memory://")
    out = capsys.readouterr().out
    assert "users by pod: {0: ['alice'], 1: ['bob', 'carol'], 2: ['dave']}" in out
    assert "bob reconnects -> pod 1 (was 1)" in out
    assert "bob moved -> pod 2" in out
    assert "alice: {'chat': 7, 'game': 0}" in out
    assert out.rstrip().endswith("done")
