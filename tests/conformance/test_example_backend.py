"""The example third-party backend passes the kit from a fresh venv, outside this repository.

Builds this project's wheel, installs it and examples/jsonfile-backend into a
new virtualenv (no network: dependencies come from this run's site-packages
through a ``.pth`` line, ``stateful`` only from the wheel), copies the
example's tests elsewhere and runs them there with the kit's pytest plugin
and ``--stateful-report``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jsonfile-backend"
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet")


def _pip(python: Path, *args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *args],
        check=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_example_backend_passes_the_kit_from_a_fresh_venv(
    built_wheel: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _pip(python, "install", "--no-deps", "--quiet", str(built_wheel), cwd=tmp_path)
    dist = tmp_path / "dist"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(dist), str(EXAMPLE)],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    (example_wheel,) = dist.glob("stateful_jsonfile-*.whl")
    _pip(python, "install", "--no-deps", "--quiet", str(example_wheel), cwd=tmp_path)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    workdir = tmp_path / "third-party"
    shutil.copytree(EXAMPLE / "tests", workdir / "tests")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "CI", "HYPOTHESIS_PROFILE")
    }
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            # The example rewrites its whole file per call: 2,500 links take a minute
            # there, so this run leaves that area out (the example's README runs it).
            "-k",
            "not many_links",
            f"--stateful-report={report}",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    document = json.loads(report.read_text())
    assert document["profile"] == "default"
    assert document["versions"]["stateful-routing"] is not None
    (backend,) = document["backends"]
    assert backend["backend"] == "jsonfile"
    areas = backend["areas"]
    for area in ("state_machine", "edge_cases", "clock", "concurrency", "cancellation", "faults"):
        assert areas[area]["passed"] >= 1 and areas[area]["failed"] == 0, (area, areas[area])
    # The stateful package came from the wheel, not from this checkout.
    where = subprocess.run(
        [str(python), "-c", "import stateful; print(stateful.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(REPO) not in where, where
    print(f"example kit in a fresh venv: {time.monotonic() - started:.1f} s")
