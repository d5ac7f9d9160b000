"""The installed wheel, outside the repository, migrates a database with its own files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stateful.backends.sql import head_revision
from tests.packaging.wheel import REPO, InstalledWheel


@pytest.mark.slow
def test_installed_wheel_migrates_sqlite_from_outside_the_repo(
    installed_wheel: InstalledWheel,
) -> None:
    database = installed_wheel.workdir / "migrated.db"
    url = f"sqlite+aiosqlite:///{database}"
    result = installed_wheel.run(str(installed_wheel.script("stateful")), "migrate", url)
    assert f"schema at revision {head_revision()}" in result.stdout
    with sqlite3.connect(database) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        version = conn.execute("SELECT version_num FROM stateful_alembic_version").fetchone()
    assert {
        "stateful_links",
        "stateful_pod_states",
        "stateful_workload_states",
        "stateful_alembic_version",
    } <= tables
    assert version == (head_revision(),)
    # The migrations that ran are the wheel's, not this checkout's.
    located = installed_wheel.run(
        "-c",
        "import stateful.backends.sql as s; from stateful.resources import resource_dir;"
        "print(s.__file__); print(resource_dir('migrations'))",
    ).stdout.split()
    for path in located:
        assert not Path(path).is_relative_to(REPO), path
