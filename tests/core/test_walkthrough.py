"""The walk-through behind ``stateful demo`` (the README's first command) works."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateful.walkthrough import walkthrough


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_walkthrough_places_users_and_drains_a_pod(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    url = "memory://" if store == "memory" else f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    for _ in range(2 if store == "sqlite" else 1):  # re-run on the same store: same story
        await walkthrough(url)
        out = capsys.readouterr().out
        assert "   alice -> pod 0\n   bob -> pod 1\n   carol -> pod 2\n   dave -> pod 0" in out
        assert "users per pod: {0: 2, 1: 1, 2: 1}" in out
        assert "bob reconnects -> pod 1 (was 1)" in out
        assert "on pod 1: ['bob']" in out
        assert "bob -> pod 2" in out
        assert "pods: {0: 'ready', 2: 'ready'}" in out
        assert "alice: {'chat': 7, 'game': 0}" in out
        assert out.rstrip().endswith("done")
