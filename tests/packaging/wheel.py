"""Build the wheel once and install it into a fresh virtualenv outside the repository (a plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class InstalledWheel:
    """A wheel built from this checkout, installed in a venv in a temporary folder."""

    wheel: Path
    python: Path
    workdir: Path  # outside the repository: nothing of the checkout is importable from here

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``python args…`` in the venv, from ``workdir``; fail on a non-zero exit."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        result = subprocess.run(
            [str(self.python), *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def script(self, name: str) -> Path:
        """Return the path of a console script installed in the venv."""
        return self.python.parent / name


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledWheel]:
    """Build the wheel (no network) and install it with ``--no-deps`` in a fresh venv.

    The drivers it needs come from this test run's own site-packages through a
    ``.pth`` line; ``.pth`` files inside that folder (such as an editable
    install of this checkout) are not processed, so ``stateful`` itself can
    only come from the wheel.
    """
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        cwd=root,
        timeout=300,
    )
    (wheel,) = dist.glob("stateful-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--quiet",
            str(wheel),
        ],
        check=True,
        cwd=root,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    workdir = root / "elsewhere"
    workdir.mkdir()
    yield InstalledWheel(wheel=wheel, python=python, workdir=workdir)
