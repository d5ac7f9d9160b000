"""Running the Alembic migrations in ``migrations/`` and checking a database's revision.

The Alembic environment ships inside the wheel (``stateful/migrations``) and is
located with `stateful.resources.resource_dir`, so this works the same from a
checkout and from an installed copy. Alembic runs synchronously, inside the
backend's own transaction (`Dialect.run`).
"""

from __future__ import annotations

import zlib
from functools import lru_cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from stateful.errors import SchemaError
from stateful.resources import resource_dir

from .dialects import Dialect
from .schema import DEFAULT_TABLE_PREFIX, version_table_name


def alembic_config(table_prefix: str, connection: Connection | None = None) -> Config:
    """Build an Alembic `Config` for stateful's migrations in code (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.set_main_option("path_separator", "os")
    config.attributes["table_prefix"] = table_prefix
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(DEFAULT_TABLE_PREFIX))


def head_revision() -> str:
    """Return the newest revision this version of stateful knows."""
    head = _script().get_current_head()
    assert head is not None, "stateful's migrations have no revision"
    return head


def known_revisions() -> frozenset[str]:
    """Return every revision this version of stateful knows."""
    return frozenset(script.revision for script in _script().walk_revisions())


def current_revision(connection: Connection, table_prefix: str) -> str | None:
    """Return the revision recorded in the database, None if it has no version table."""
    context = MigrationContext.configure(
        connection, opts={"version_table": version_table_name(table_prefix)}
    )
    return context.get_current_revision()


def upgrade(connection: Connection, table_prefix: str) -> str:
    """Upgrade to head on ``connection`` (inside the caller's transaction); return head."""
    command.upgrade(alembic_config(table_prefix, connection), "head")
    revision = current_revision(connection, table_prefix)
    assert revision is not None
    return revision


async def migrate(dialect: Dialect, table_prefix: str) -> str:
    """Upgrade the database behind ``dialect`` to head; return the revision.

    Concurrent migrators take turns: SQLite's write lock, a PostgreSQL
    transaction-level advisory lock, or a MariaDB/MySQL named lock. DDL is
    transactional on SQLite and PostgreSQL (all or nothing); MariaDB commits
    each DDL statement.
    """
    name = dialect.engine.dialect.name
    lock_id = zlib.crc32(f"stateful-migrate:{table_prefix}".encode())
    named_lock = {"name": f"stateful_migrate_{lock_id}"}

    def locked_upgrade(conn: Connection) -> str:
        if name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            return upgrade(conn, table_prefix)
        if name not in ("mysql", "mariadb"):
            return upgrade(conn, table_prefix)
        conn.execute(text("SELECT GET_LOCK(:name, 300)"), named_lock)
        try:
            revision = upgrade(conn, table_prefix)
        except BaseException:
            # The named lock belongs to the session: end it rather than pool it.
            conn.invalidate()
            raise
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), named_lock)
        return revision

    return await dialect.run(locked_upgrade, write=True, single=False)


def migrate_command(url: str, table_prefix: str) -> str:
    """Return the command that migrates ``url`` (for error messages)."""
    option = "" if table_prefix == DEFAULT_TABLE_PREFIX else f" --table-prefix {table_prefix}"
    return f"stateful migrate{option} {url}"


async def check_schema(dialect: Dialect, table_prefix: str, url: str) -> None:
    """Make sure the schema is at head: SQLite upgrades itself, others raise `SchemaError`.

    ``url`` (password hidden) goes into the error message.
    """
    revision = await dialect.run(
        lambda conn: current_revision(conn, table_prefix), write=False, single=True
    )
    head = head_revision()
    if revision == head:
        return
    if revision is not None and revision not in known_revisions():
        raise SchemaError(
            f"the stateful schema in {url} is at revision {revision!r}, newer than this "
            f"version of stateful knows (head {head!r}); upgrade the stateful package"
        )
    if dialect.engine.dialect.name == "sqlite":
        await migrate(dialect, table_prefix)
        return
    state = (
        f"is missing (no table {version_table_name(table_prefix)})"
        if revision is None
        else f"is outdated (revision {revision!r}, this version needs {head!r})"
    )
    raise SchemaError(
        f"the stateful schema in {url} {state}; run: {migrate_command(url, table_prefix)}"
    )
