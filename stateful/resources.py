"""Where the Lua scripts and the Alembic migrations are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory ``lua`` or ``migrations``.

    An installed wheel nests them inside the package (``stateful/lua``); a
    source checkout keeps them at the repository root.
    """
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"stateful: the {name!r} directory is missing from this install")
