"""docs/routing.md runs: its code blocks, as one module, on memory:// and on SQLite."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path
from typing import Any

import pytest

import stateful

ROUTING = Path(__file__).resolve().parents[2] / "docs" / "routing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def load_module() -> types.ModuleType:
    """Execute the page's Python blocks, in order, as one module."""
    blocks = BLOCK.findall(ROUTING.read_text(encoding="utf-8"))
    assert len(blocks) >= 4, "docs/routing.md lost its code blocks"
    module = types.ModuleType("docs_routing")
    exec(compile("\n".join(blocks), str(ROUTING), "exec"), module.__dict__)
    return module


def test_uses_only_the_public_api() -> None:
    source = "\n".join(BLOCK.findall(ROUTING.read_text(encoding="utf-8")))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert [alias.name for alias in node.names] == ["stateful"]
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "stateful"
            assert {alias.name for alias in node.names} <= set(stateful.__all__)
        elif isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), f"private name {node.attr!r} in the docs"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_router_life(store: str, tmp_path: Path) -> None:
    module = load_module()
    url = "memory://" if store == "memory" else f"sqlite+aiosqlite:///{tmp_path / 'routing.db'}"
    summary: dict[str, Any] = await module.router_life(url, stateful.ManualClock())
    # The page's own asserts checked each step; the summary is what it tells readers.
    assert summary["reaped"] == {3: 24}
    assert summary["moved"] == 26  # pod 0's 25 plus the user re-placed from pod 3
    assert summary["spread"] == {1: 38, 2: 38}
    assert summary["states"] == {1: "ready", 2: "ready"}
