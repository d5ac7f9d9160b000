"""URL schemes → backend factories, and `connect`.

A backend factory is a callable ``factory(url, *, clock, **options) -> Backend``.
Built-in backends are imported lazily, so a driver is needed only when its
scheme is used. Third-party backends join through the entry-point group
``stateful.backends`` (entry-point name = URL scheme, value = the factory)::

    [project.entry-points."stateful.backends"]
    etcd = "stateful_etcd:from_url"
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from typing import Any, Protocol

from stateful.backend import Backend
from stateful.clock import Clock
from stateful.errors import StatefulError, ValidationError
from stateful.executor import StatefulExecutor

ENTRY_POINT_GROUP = "stateful.backends"


class BackendFactory(Protocol):
    """Builds a backend from a URL; ``clock`` is None unless the caller chose one."""

    def __call__(self, url: str, *, clock: Clock | None, **options: Any) -> Backend:
        """Return a backend for ``url``; no I/O should happen before the first call."""
        ...


# scheme → ("module:attribute", extra that installs its driver)
_BUILTIN: dict[str, tuple[str, str]] = {
    "memory": ("stateful.backends.memory:from_url", ""),
    "redis": ("stateful.backends.redis:from_url", "redis"),
    "rediss": ("stateful.backends.redis:from_url", "redis"),
    "unix": ("stateful.backends.redis:from_url", "redis"),
    "redis+cluster": ("stateful.backends.redis:from_url", "redis"),
    "rediss+cluster": ("stateful.backends.redis:from_url", "redis"),
    "redis+sentinel": ("stateful.backends.redis:from_url", "redis"),
    "rediss+sentinel": ("stateful.backends.redis:from_url", "redis"),
}
_SQL_TARGET = ("stateful.backends.sql:from_url", "sql")
# Any SQLAlchemy URL ("dialect" or "dialect+driver") goes to the SQL backend,
# which tells the user if the driver is not an async one.
_SQL_SCHEME = re.compile(r"^(sqlite|postgresql|postgres|mysql|mariadb)(\+[a-z0-9_]+)?$")

_registered: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Register ``factory`` for URLs of ``scheme`` in this process (overrides others)."""
    _registered[scheme.lower()] = factory


def _scheme_of(url: str) -> str:
    if not isinstance(url, str):
        raise ValidationError("url", f"must be a str, not {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ValidationError("url", f"has no scheme (expected 'scheme://...'): {url!r}")
    return scheme.lower()


def _load(target: str, extra: str) -> BackendFactory:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra and exc.name and not exc.name.startswith("stateful"):
            raise StatefulError(
                f"this backend needs the {exc.name!r} package: pip install 'stateful[{extra}]'"
            ) from exc
        raise
    factory: BackendFactory = getattr(module, attribute)
    return factory


def backend_factory(url: str) -> BackendFactory:
    """Return the factory that serves ``url``'s scheme.

    Order: `register_backend`, built-in schemes, SQLAlchemy URLs, then the
    ``stateful.backends`` entry points.
    """
    scheme = _scheme_of(url)
    if scheme in _registered:
        return _registered[scheme]
    if scheme in _BUILTIN:
        return _load(*_BUILTIN[scheme])
    if _SQL_SCHEME.match(scheme):
        return _load(*_SQL_TARGET)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name.lower() == scheme:
            loaded: BackendFactory = entry.load()
            return loaded
    known = sorted({*_registered, *_BUILTIN, "sqlite+aiosqlite", "postgresql+asyncpg"})
    raise ValidationError("url", f"no backend for scheme {scheme!r}; known: {', '.join(known)}")


def connect(
    url: str, *, clock: Clock | None = None, timeout: float | None = None, **options: Any
) -> StatefulExecutor:
    """Return an executor for the store at ``url``; no I/O happens until the first call.

    ``clock`` fixes the time source (default: the system clock, or the server's
    clock for Redis); ``timeout`` limits each operation, in seconds; other
    keyword arguments go to the backend.
    """
    factory = backend_factory(url)
    return StatefulExecutor(factory(url, clock=clock, **options), timeout=timeout)
