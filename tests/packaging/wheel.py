"""Build the wheel once and install it into a fresh virtualenv outside the repository (a plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
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

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python args…`` in the venv, from ``workdir``; with ``check``, fail on exit != 0."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("STATEFUL_")
        }
        result = subprocess.run(
            [str(self.python), *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def script(self, name: str) -> Path:
        """Return the path of a console script installed in the venv."""
        return self.python.parent / name


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel of this checkout once per session (no network)."""
    dist = tmp_path_factory.mktemp("dist")
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
        cwd=dist,
        timeout=300,
    )
    (wheel,) = dist.glob("stateful_routing-*.whl")
    return wheel


def _install(wheel: Path, root: Path, *, with_drivers: bool) -> InstalledWheel:
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
    if with_drivers:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (Path(purelib) / "_test_dependencies.pth").write_text(
            sysconfig.get_paths()["purelib"] + "\n"
        )
    workdir = root / "elsewhere"
    workdir.mkdir()
    return InstalledWheel(wheel=wheel, python=python, workdir=workdir)


@pytest.fixture(scope="session")
def installed_wheel(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    """The wheel installed with ``--no-deps`` in a fresh venv that can import the drivers.

    The drivers come from this test run's own site-packages through a ``.pth``
    line; ``.pth`` files inside that folder (such as an editable install of
    this checkout) are not processed, so ``stateful`` itself can only come
    from the wheel.
    """
    return _install(built_wheel, tmp_path_factory.mktemp("wheel"), with_drivers=True)


@pytest.fixture(scope="session")
def plain_wheel(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    """The wheel installed alone, as ``pip install stateful-routing`` without extras leaves it."""
    return _install(built_wheel, tmp_path_factory.mktemp("plain"), with_drivers=False)
