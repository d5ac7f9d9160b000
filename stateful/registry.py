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
import importlib.util
import re
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Protocol

from stateful.backend import Backend
from stateful.clock import Clock
from stateful.errors import StatefulError, ValidationError
from stateful.executor import DEFAULT_CLOSE_TIMEOUT, Observer, StatefulExecutor

ENTRY_POINT_GROUP = "stateful.backends"


class BackendFactory(Protocol):
    """Builds a backend from a URL; ``clock`` is None unless the caller chose one."""

    def __call__(self, url: str, *, clock: Clock | None, **options: Any) -> Backend:
        """Return a backend for ``url``; no I/O should happen before the first call."""
        ...


DISTRIBUTION = "stateful-routing"  # the name on the package index; the import name is `stateful`

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
_SQL_TARGET = "stateful.backends.sql:from_url"
# Any SQLAlchemy URL ("dialect" or "dialect+driver") goes to the SQL backend,
# which tells the user if the driver is not an async one.
_SQL_SCHEME = re.compile(r"^(sqlite|postgresql|postgres|mysql|mariadb)(\+[a-z0-9_]+)?$")
# SQL dialect → (its default async driver's module, the extra that installs it)
_SQL_DRIVERS: dict[str, tuple[str, str]] = {
    "sqlite": ("aiosqlite", "sql"),
    "postgresql": ("asyncpg", "postgresql"),
    "postgres": ("asyncpg", "postgresql"),
    "mysql": ("asyncmy", "mysql"),
    "mariadb": ("asyncmy", "mysql"),
}
# Spelled-out examples for the unknown-scheme message (the SQL backend takes any
# async SQLAlchemy URL of these dialects).
_SQL_EXAMPLES = ("sqlite+aiosqlite", "postgresql+asyncpg", "mysql+asyncmy", "mariadb+asyncmy")

_registered: dict[str, BackendFactory] = {}


def install_hint(extra: str) -> str:
    """Return the pip command that installs the extra ``extra`` of this distribution."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


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


def is_sql_url(url: str) -> bool:
    """Return True if ``url`` is served by the built-in SQL backend."""
    scheme = _scheme_of(url)
    return scheme not in _registered and _SQL_SCHEME.match(scheme) is not None


def prefix_option(url: str) -> str | None:
    """Return the option that namespaces the store's keys or tables for ``url``.

    ``prefix`` (Redis keys), ``table_prefix`` (SQL tables), or None for
    backends without one.
    """
    scheme = _scheme_of(url)
    if scheme in _registered:
        return None
    if _BUILTIN.get(scheme, ("", ""))[1] == "redis":
        return "prefix"
    return "table_prefix" if _SQL_SCHEME.match(scheme) else None


def _import(module_name: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra and exc.name and not exc.name.startswith("stateful"):
            raise StatefulError(
                f"this backend needs the {exc.name!r} package: {install_hint(extra)}"
            ) from exc
        raise


def _load(target: str, extra: str) -> BackendFactory:
    module_name, _, attribute = target.partition(":")
    factory: BackendFactory = getattr(_import(module_name, extra), attribute)
    return factory


def sql_backend_module(url: str) -> ModuleType:
    """Import the SQL backend for ``url``, checking that its driver is installed.

    Raises `StatefulError` naming the extra to install when SQLAlchemy or the
    URL's async driver is missing (``stateful-routing[postgresql]`` for a
    PostgreSQL URL, ``[mysql]`` for MySQL/MariaDB, ``[sql]`` for SQLite).
    """
    dialect, _, driver = _scheme_of(url).partition("+")
    default_module, extra = _SQL_DRIVERS[dialect]
    module = _import("stateful.backends.sql", extra)
    # Another driver named in the URL is the SQL backend's to judge: it refuses
    # a synchronous one (postgresql+psycopg2) and names a missing async one.
    if driver in ("", default_module) and importlib.util.find_spec(default_module) is None:
        raise StatefulError(
            f"{dialect}+{default_module} URLs need the {default_module!r} package: "
            f"{install_hint(extra)}"
        )
    return module


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
        factory: BackendFactory = sql_backend_module(url).from_url
        return factory
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name.lower() == scheme:
            loaded: BackendFactory = entry.load()
            return loaded
    known = sorted({*_registered, *_BUILTIN, *_SQL_EXAMPLES})
    raise ValidationError("url", f"no backend for scheme {scheme!r}; known: {', '.join(known)}")


def connect(
    url: str,
    *,
    clock: Clock | None = None,
    timeout: float | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    observer: Observer | None = None,
    **options: Any,
) -> StatefulExecutor:
    """Return an executor for the store at ``url``; no I/O happens until the first call.

    ``clock`` fixes the time source (default: the system clock, or the server's
    clock for Redis); ``timeout`` limits each operation, in seconds;
    ``close_timeout`` bounds `StatefulExecutor.aclose` (default 10 s);
    ``observer`` watches every operation (see `stateful.telemetry`; an
    `OpenTelemetryObserver` without a URL is given this one). Other keyword
    arguments go to the backend.
    """
    factory = backend_factory(url)
    backend = factory(url, clock=clock, **options)
    if observer is not None:
        from stateful.telemetry import OpenTelemetryObserver  # imports no OpenTelemetry

        if isinstance(observer, OpenTelemetryObserver) and observer.url is None:
            observer.url = url
    return StatefulExecutor(
        backend, timeout=timeout, close_timeout=close_timeout, observer=observer
    )
