"""Alembic environment for stateful's tables.

Normally run by `stateful.backends.sql.migration`, which passes an open
connection as ``config.attributes["connection"]`` and the table prefix as
``config.attributes["table_prefix"]``. It also works from the ``alembic``
command with ``sqlalchemy.url`` set in an ini file (any SQLAlchemy async URL)
and the prefix as ``-x table_prefix=...``.

The version table is ``<prefix>alembic_version``, never the application's
``alembic_version``, so stateful's migrations and the application's own stay
apart in one database.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_TABLE_PREFIX = "stateful_"

config = context.config
prefix = str(
    config.attributes.get("table_prefix")
    or context.get_x_argument(as_dictionary=True).get("table_prefix")
    or DEFAULT_TABLE_PREFIX
)
# The revisions read the prefix from here.
config.attributes["table_prefix"] = prefix
VERSION_TABLE = f"{prefix}alembic_version"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()
elif isinstance(config.attributes.get("connection"), Connection):
    _run(config.attributes["connection"])
else:
    asyncio.run(_run_with_own_engine(str(config.get_main_option("sqlalchemy.url"))))
