"""``stateful bench`` runs end to end on tiny sizes (what it measures is not asserted).

Benchmarks are not tests: these only check that the harness works, that its
tables are well formed, and that the scale and pods runs find back what they
loaded (they raise otherwise), on memory:// and SQLite.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stateful.bench import main

ROW = re.compile(
    r"^\| (?P<op>[^|]+) \| [^|]+ \| (?P<c>\d+) \| [\d,]+ \| [\d,]+ \| (?P<ratio>[\d.]+) \|"
)


def test_comparison_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["memory://", "--ops", "get_linked_pod,set_linked_pod,set_linked_pod (new pod)",
            "--concurrency", "1,4", "--seconds", "0.02", "--rounds", "1"]
    assert main(argv) == 0
    rows = [m for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert [(m["op"], m["c"]) for m in rows] == [
        ("get_linked_pod", "1"), ("get_linked_pod", "4"),
        ("set_linked_pod", "1"), ("set_linked_pod", "4"),
        ("set_linked_pod (new pod)", "1"), ("set_linked_pod (new pod)", "4"),
    ]
    assert all(float(m["ratio"]) > 0 for m in rows)


def test_unknown_operation_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory://", "--ops", "no_such_op", "--seconds", "0.01"]) == 2
    assert "unknown operations" in capsys.readouterr().err


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_pods_and_scale_runs(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "memory://" if store == "memory" else f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    assert main([url, "--pods", "--pod-links", "3000", "--big-pod", "500"]) == 0
    out = capsys.readouterr().out
    assert "| 500 uids |" in out and "| 500 removed |" in out
    assert main([url, "--scale", "100,2000", "--reads", "50"]) == 0
    assert re.search(r"^\| 2,000 \| ", capsys.readouterr().out, re.MULTILINE)
