"""``stateful migrate|purge|bench|demo|--version``, and the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import stateful
from stateful.cli import main
from tests.cli.conftest import Cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"stateful-routing {stateful.__version__}\n"


def test_migrate_and_purge_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("STATEFUL_URL", url)
    assert main(["migrate"]) == 0
    revision = capsys.readouterr().out.strip().removeprefix("schema at revision ")
    assert revision
    assert main(["migrate", "--json"]) == 0  # idempotent
    assert capsys.readouterr().out.strip() == f'{{"revision": "{revision}"}}'
    assert main(["link", "set", "prod", "u", "game", "1", "--ttl", "1", "--force"]) == 0
    assert main(["purge", url, "--json"]) == 0
    capsys.readouterr()
    assert main(["purge", url]) == 0
    assert capsys.readouterr().out.startswith("purged ")


def test_migrate_and_purge_explain_stores_without_a_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate", "--url", "memory://"]) == 0
    assert capsys.readouterr().err == "stateful: memory stores have no schema: nothing to migrate\n"
    # A Redis store has a key layout to upgrade (tests/redis_backend/test_upgrade.py).
    assert main(["migrate", "--url", "redis://127.0.0.1:1/0"]) == 3
    assert "store failed: migrate: ConnectionError" in capsys.readouterr().err
    assert main(["purge", "redis+cluster://127.0.0.1:1"]) == 0
    assert capsys.readouterr().err == "stateful: nothing to purge: Redis expires keys by itself\n"
    assert main(["purge", "memory://"]) == 0
    assert "memory stores drop expired links by themselves" in capsys.readouterr().err


def test_migrate_without_sqlalchemy_names_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith("stateful.backends.sql")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    assert main(["migrate", "postgresql+asyncpg://u@127.0.0.1/db"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'stateful-routing[postgresql]'" in err and "'sqlalchemy'" in err
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'stateful-routing[sql]'" in err and "stateful demo memory://" in err


def test_bench_delegates_or_says_it_is_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("stateful.bench")

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stateful.bench", fake)
    assert main(["bench", "redis://h/0", "--seconds", "1"]) == 0
    assert seen == [["redis://h/0", "--seconds", "1"]]
    monkeypatch.setitem(sys.modules, "stateful.bench", None)
    assert main(["bench", "redis://h/0"]) == 2
    assert (
        capsys.readouterr().err == "stateful: bench is not available in this version of stateful\n"
    )


def test_demo_on_a_store(cli: Cli) -> None:
    result = cli.ok("demo")
    assert "bob reconnects -> pod" in result.out and result.out.endswith("done\n")


def script(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_console_script_and_python_m(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFUL_")}
    stateful_script = str(Path(sys.executable).parent / "stateful")
    version = script(stateful_script, "--version", cwd=tmp_path, env=env)
    assert (version.returncode, version.stdout) == (0, f"stateful-routing {stateful.__version__}\n")
    module = script(sys.executable, "-m", "stateful", "--version", cwd=tmp_path, env=env)
    assert module.stdout == version.stdout
    # No --url and no STATEFUL_URL: the demo's SQLite file in the current folder.
    absent = script(stateful_script, "link", "get", "prod", "alice", "game", cwd=tmp_path, env=env)
    assert absent.returncode == 1, absent.stderr
    assert absent.stderr == "stateful: no live link for 'alice' in 'game' (namespace 'prod')\n"
    assert (tmp_path / "stateful-demo.db").exists()
    moved = script(
        stateful_script,
        "link",
        "set",
        "prod",
        "alice",
        "game",
        "3",
        "--force",
        cwd=tmp_path,
        env=env,
    )
    assert moved.returncode == 0, moved.stderr
    found = script(
        sys.executable,
        "-m",
        "stateful",
        "link",
        "get",
        "prod",
        "alice",
        "game",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert found.stdout == '{"namespace": "prod", "uid": "alice", "service": "game", "pod": 3}\n'
    usage = script(stateful_script, "link", "--help", cwd=tmp_path, env=env)
    assert usage.returncode == 0 and "``" not in usage.stdout and "`" not in usage.stdout


def test_bench_gets_every_argument_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 4

    fake = types.ModuleType("stateful.bench")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stateful.bench", fake)
    assert main(["bench", "--help"]) == 4
    assert main(["--url", "memory://", "--json", "bench", "memory://", "--json"]) == 4
    assert seen == [["--help"], ["memory://", "--json"]]
