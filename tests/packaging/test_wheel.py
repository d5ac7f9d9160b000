"""The wheel is self-contained: installed outside the repo it has adapters, Lua, migrations."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.packaging.wheel import REPO, InstalledWheel


def test_wheel_nests_adapters_scripts_and_migrations_under_the_package(
    installed_wheel: InstalledWheel,
) -> None:
    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    top_level = {name.split("/")[0] for name in names if not name.startswith("stateful_routing-")}
    assert top_level == {"stateful"}, f"the wheel adds other top-level names: {top_level}"
    for lua in (REPO / "lua").glob("*.lua"):
        assert f"stateful/lua/{lua.name}" in names
    for migration in (REPO / "migrations").rglob("*.py"):
        assert f"stateful/migrations/{migration.relative_to(REPO / 'migrations')}" in names
    assert "stateful/backends/memory.py" in names
    assert "stateful/py.typed" in names


def test_installed_wheel_imports_from_the_venv_and_finds_its_resources(
    installed_wheel: InstalledWheel,
) -> None:
    out = installed_wheel.run(
        "-c",
        "import stateful, stateful.backends.memory as m;"
        "from stateful.resources import resource_dir;"
        "print(stateful.__file__); print(m.__file__);"
        "print(resource_dir('lua')); print(resource_dir('migrations'))",
    ).stdout.split()
    venv_root = installed_wheel.python.parent.parent
    for path in out:
        assert Path(path).is_relative_to(venv_root), f"{path} is not from the installed wheel"
        assert not Path(path).is_relative_to(REPO)


def test_installed_wheel_runs_the_walkthrough(installed_wheel: InstalledWheel) -> None:
    result = installed_wheel.run(str(installed_wheel.script("stateful")), "demo", "memory://")
    assert "bob reconnects -> pod 1 (was 1)" in result.stdout
    assert result.stdout.rstrip().endswith("done")


def test_the_wheel_is_stateful_routing_and_installs_the_stateful_command(
    installed_wheel: InstalledWheel,
) -> None:
    metadata = installed_wheel.run(
        "-c",
        "from importlib.metadata import metadata; m = metadata('stateful-routing');"
        "print(m['Name']); print(sorted(set(m.get_all('Provides-Extra'))))",
    ).stdout.splitlines()
    assert metadata[0] == "stateful-routing"
    for extra in ("redis", "sql", "postgresql", "mysql", "testing", "otel"):
        assert f"'{extra}'" in metadata[1]
    script = str(installed_wheel.script("stateful"))
    version = installed_wheel.run(script, "--version").stdout
    assert version.startswith("stateful-routing ")
    assert installed_wheel.run("-m", "stateful", "--version").stdout == version


def test_installed_command_reads_and_writes_links_on_sqlite(
    installed_wheel: InstalledWheel,
) -> None:
    script = str(installed_wheel.script("stateful"))
    url = ["--url", f"sqlite+aiosqlite:///{installed_wheel.workdir / 'cli.db'}"]
    absent = installed_wheel.run(script, "link", "get", "ns", "alice", "game", *url, check=False)
    assert absent.returncode == 1
    assert absent.stderr == "stateful: no live link for 'alice' in 'game' (namespace 'ns')\n"
    installed_wheel.run(script, "state", "set", "ns", "game", "2", "ready", *url)
    installed_wheel.run(script, "link", "set", "ns", "alice", "game", "2", *url)
    found = installed_wheel.run(script, "link", "get", "ns", "alice", "game", "--json", *url)
    assert found.stdout == '{"namespace": "ns", "uid": "alice", "service": "game", "pod": 2}\n'


def test_a_plain_install_says_which_extra_to_install(plain_wheel: InstalledWheel) -> None:
    script = str(plain_wheel.script("stateful"))
    demo = plain_wheel.run(script, "demo", check=False)
    assert demo.returncode == 2
    assert "pip install 'stateful-routing[sql]'" in demo.stderr
    assert "stateful demo memory://" in demo.stderr
    assert demo.stderr.count("\n") == 1 and "Traceback" not in demo.stderr
    hints = {
        "postgresql+asyncpg://u@127.0.0.1/db": "postgresql",
        "mysql+asyncmy://u@127.0.0.1/db": "mysql",
        "redis://127.0.0.1:6379/0": "redis",
    }
    for url, extra in hints.items():
        result = plain_wheel.run(script, "link", "get", "n", "u", "s", "--url", url, check=False)
        assert result.returncode == 2
        assert f"pip install 'stateful-routing[{extra}]'" in result.stderr, result.stderr
    migrate = plain_wheel.run(script, "migrate", "postgresql://u@127.0.0.1/db", check=False)
    assert "pip install 'stateful-routing[postgresql]'" in migrate.stderr
    assert "memory" in plain_wheel.run(script, "demo", "memory://").stdout
