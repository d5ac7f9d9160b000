"""The conformance kit's pytest plugin (entry point ``pytest11``: ``stateful``).

* Loads the kit's Hypothesis profiles: ``HYPOTHESIS_PROFILE`` if set, else
  ``ci`` under ``CI=true``, else ``default`` (deadlines off, shrinking
  bounded to `profiles.SHRINK_SECONDS`).
* Makes the first line of a failed kit test say what went wrong: the call,
  its arguments, the backend's answer and the model's; the minimal steps
  follow.
* ``--stateful-report PATH`` writes a JSON report: per backend (each
  `ConformanceKit` subclass), the versions, the declared capabilities and
  the passed / skipped / failed tests per area.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Generator
from importlib import metadata
from typing import Any

import pytest

_RESULTS: dict[str, dict[str, Any]] = {}


def _kit() -> Any:
    # Installed without the ``testing`` extra (no Hypothesis), the plugin stays
    # out of the way: it is loaded by every pytest run in the environment.
    try:
        from stateful.testing import kit
    except ImportError:
        return None
    return kit


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--stateful-report``; register the kit's profiles early (for --hypothesis-profile)."""
    if _kit() is not None:
        from stateful.testing.profiles import register_profiles

        register_profiles()
    group = parser.getgroup("stateful", "stateful conformance kit")
    group.addoption(
        "--stateful-report",
        metavar="PATH",
        default=None,
        help="write the conformance kit's results (per backend and area) as JSON to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Load the kit's Hypothesis profile."""
    if _kit() is None:
        return
    from stateful.testing.profiles import load_kit_profile

    if not config.getoption("hypothesis_profile", default=None):
        config.stash[_PROFILE] = load_kit_profile()
    else:
        config.stash[_PROFILE] = str(config.getoption("hypothesis_profile"))


_PROFILE = pytest.StashKey[str]()


def _kit_class(item: pytest.Item) -> Any:
    kit = _kit()
    cls = getattr(item, "cls", None)
    if kit is not None and isinstance(cls, type) and issubclass(cls, kit.ConformanceKit):
        return cls
    return None


def _first_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    error = excinfo.value
    message = str(error).strip().splitlines()
    return message[0] if message else type(error).__name__


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Record kit results per area; put the mismatch first in a failure's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    cls = _kit_class(item)
    if cls is None:
        return
    name = getattr(item, "originalname", item.name)
    area = _kit().AREAS.get(name, name)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        entry = _RESULTS.setdefault(
            cls.__qualname__,
            {
                "backend": cls.backend_name or cls.__name__,
                "module": cls.__module__,
                "capabilities": cls.capabilities.as_dict(),
                "areas": {},
            },
        )
        counts = entry["areas"].setdefault(
            area, {"passed": 0, "skipped": 0, "failed": 0, "tests": {}}
        )
        verdict = report.outcome
        counts[verdict] = counts.get(verdict, 0) + 1
        detail: dict[str, Any] = {"outcome": verdict, "seconds": round(report.duration, 3)}
        if report.skipped and isinstance(report.longrepr, tuple):
            detail["reason"] = str(report.longrepr[2])
        if report.failed and call.excinfo is not None:
            detail["first_line"] = _first_line(call.excinfo)
        counts["tests"][name] = detail
    if report.failed and call.excinfo is not None and report.when == "call":
        notes = "\n".join(getattr(call.excinfo.value, "__notes__", []))
        report.longrepr = (
            f"{_first_line(call.excinfo)}\n\n{notes}\n\n--- full report ---\n{report.longrepr}"
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the report if asked."""
    path = session.config.getoption("stateful_report")
    if not path:
        return
    from stateful.testing.profiles import SHRINK_SECONDS

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "platform": sys.platform,
    }
    for dist in ("stateful-routing", "hypothesis", "pytest"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    document = {
        "profile": session.config.stash.get(_PROFILE, None),
        "shrink_seconds": SHRINK_SECONDS,
        "versions": versions,
        "backends": list(_RESULTS.values()),
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
