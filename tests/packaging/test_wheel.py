"""The wheel is self-contained: installed outside the repo it has adapters, Lua, migrations."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.packaging.wheel import REPO, InstalledWheel


def test_wheel_nests_adapters_scripts_and_migrations_under_the_package(
    installed_wheel: InstalledWheel,
) -> None:
    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    top_level = {name.split("/")[0] for name in names if not name.startswith("stateful-")}
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
