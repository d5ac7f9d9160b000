"""SQL backend: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy's asyncio Core.

Selected by any SQLAlchemy async URL (``sqlite+aiosqlite:///file.db``,
``postgresql+asyncpg://...``, ``mysql+asyncmy://...``, ``mysql+aiomysql://...``;
a URL without a driver gets the default async one), or built from an
existing `AsyncEngine` with `SQLBackend`. See ``docs/sql.md``.
"""

from __future__ import annotations

from stateful.errors import BackendError, BackendUnavailable, StatefulError

from . import errors as _errors
from .backend import SQLBackend, from_url
from .dialects import dialect_for
from .engines import create_engine
from .migration import head_revision, migrate
from .schema import DEFAULT_TABLE_PREFIX, Tables, build_tables

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "SQLBackend",
    "Tables",
    "build_tables",
    "from_url",
    "head_revision",
    "migrate_url",
    "purge_url",
]


def _wrapped(error: Exception, what: str) -> StatefulError:
    kind = BackendUnavailable if _errors.is_unavailable(error) else BackendError
    return kind(f"{what}: {type(error).__name__}: {error}")


async def migrate_url(url: str, *, table_prefix: str = DEFAULT_TABLE_PREFIX) -> str:
    """Create or upgrade stateful's tables at ``url``; return the schema revision.

    Idempotent: a database already at the newest revision is left as it is.
    """
    from stateful.errors import ValidationError

    from .schema import check_table_prefix

    try:
        check_table_prefix(table_prefix)
    except ValueError as exc:
        raise ValidationError("table_prefix", str(exc)) from None
    engine = create_engine(url)
    try:
        dialect = dialect_for(engine, build_tables(table_prefix), purge_batch_size=1)
        return await migrate(dialect, table_prefix)
    except StatefulError:
        raise
    except Exception as exc:
        raise _wrapped(exc, "migrate") from exc
    finally:
        await engine.dispose()


async def purge_url(url: str, *, table_prefix: str = DEFAULT_TABLE_PREFIX) -> int:
    """Delete the expired links at ``url`` now; return how many were deleted."""
    backend = from_url(url, table_prefix=table_prefix)
    try:
        return await backend.purge_expired()
    except StatefulError:
        raise
    except Exception as exc:
        raise _wrapped(exc, "purge") from exc
    finally:
        await backend.aclose()
