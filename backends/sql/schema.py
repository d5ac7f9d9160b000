"""The SQL schema as SQLAlchemy Core tables, built for a table-name prefix.

Three tables (``<prefix>links``, ``<prefix>pod_states``,
``<prefix>workload_states``) plus Alembic's version table
``<prefix>alembic_version``. The migrations in ``migrations/versions`` create
exactly these; a test compares the two.

* Keys are 32-byte digests (`keys`), stored as ``BINARY(32)`` on MariaDB and
  MySQL, ``BYTEA`` on PostgreSQL and ``BLOB`` on SQLite.
* The identifiers themselves are kept as ``VARCHAR`` for reading back; on
  MariaDB and MySQL the tables use ``utf8mb4`` with the binary collation
  ``utf8mb4_bin`` so that any Unicode string is stored as given.
* ``links.expires_at`` is integer milliseconds since the Unix epoch, NULL for
  a permanent link; it is indexed so that purging finds expired rows fast.
* ``links.owner_key`` (digest of namespace and uid) is indexed so that
  `get_link_service` reads a uid's links without a second table.
* ``links.service_key`` (digest of namespace and service, as in the state
  tables) leads the index ``(service_key, pod, link_key, expires_at)``: one
  pod's links in ``link_key`` order (`pod_links_page` walks it after a
  cursor) and the live links per pod of one service (`count_pod_links`
  counts them from the index alone), never touching other services' rows.
* ``links.updated_at`` is when a call last set, refreshed or turned the link
  temporary (milliseconds, store clock; `get_link_info`).
* ``pod_states.expires_at`` is the heartbeat deadline of a state set with a
  TTL (NULL: permanent), indexed for purging like the links'.

Revision 0001 created the first three tables; 0002 added ``service_key``,
``updated_at``, the pod index and the states' ``expires_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from stateful.validation import MAX_NAMESPACE, MAX_SERVICE_NAME, MAX_STATE, MAX_UID

from .keys import DIGEST_SIZE

DEFAULT_TABLE_PREFIX = "stateful_"

# Letters, digits and underscores: safe unquoted in every dialect. The longest
# derived name ("ix_<prefix>pod_states_expires_at") must stay within MySQL's
# 64-character identifier limit.
# Never empty: the version table would then be the application's own
# "alembic_version".
_PREFIX_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")

# MariaDB and MySQL: a binary collation compares and stores strings exactly.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def check_table_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a usable table-name prefix, else raise ValueError."""
    if not isinstance(prefix, str) or not _PREFIX_PATTERN.match(prefix):
        raise ValueError(
            "table_prefix must be 1 to 32 letters, digits or underscores, "
            f"not starting with a digit; got {prefix!r}"
        )
    return prefix


def version_table_name(prefix: str) -> str:
    """Name of the Alembic version table for ``prefix``."""
    return f"{prefix}alembic_version"


def digest_type() -> TypeEngine[bytes]:
    """Column type of a 32-byte key."""
    return LargeBinary(DIGEST_SIZE).with_variant(mysql.BINARY(DIGEST_SIZE), "mysql", "mariadb")


@dataclass(frozen=True)
class Tables:
    """The three tables of one table prefix."""

    prefix: str
    metadata: MetaData
    links: Table
    pod_states: Table
    workload_states: Table


def build_tables(prefix: str = DEFAULT_TABLE_PREFIX) -> Tables:
    """Build the tables named with ``prefix`` in a fresh `MetaData`."""
    check_table_prefix(prefix)
    metadata = MetaData()
    links = Table(
        f"{prefix}links",
        metadata,
        Column("link_key", digest_type(), nullable=False),
        Column("owner_key", digest_type(), nullable=False),
        Column("namespace", String(MAX_NAMESPACE), nullable=False),
        Column("uid", String(MAX_UID), nullable=False),
        Column("service", String(MAX_SERVICE_NAME), nullable=False),
        Column("pod", Integer, nullable=False),
        Column("expires_at", BigInteger, nullable=True),
        Column("service_key", digest_type(), nullable=False),
        Column("updated_at", BigInteger, nullable=False),
        PrimaryKeyConstraint("link_key"),
        Index(f"ix_{prefix}links_owner_key", "owner_key"),
        Index(f"ix_{prefix}links_expires_at", "expires_at"),
        Index(f"ix_{prefix}links_pod", "service_key", "pod", "link_key", "expires_at"),
        **MYSQL_TABLE_OPTIONS,
    )
    pod_states = Table(
        f"{prefix}pod_states",
        metadata,
        Column("service_key", digest_type(), nullable=False),
        Column("pod", Integer, nullable=False),
        Column("namespace", String(MAX_NAMESPACE), nullable=False),
        Column("service", String(MAX_SERVICE_NAME), nullable=False),
        Column("state", String(MAX_STATE), nullable=False),
        Column("expires_at", BigInteger, nullable=True),
        PrimaryKeyConstraint("service_key", "pod"),
        Index(f"ix_{prefix}pod_states_expires_at", "expires_at"),
        **MYSQL_TABLE_OPTIONS,
    )
    workload_states = Table(
        f"{prefix}workload_states",
        metadata,
        Column("service_key", digest_type(), nullable=False),
        Column("namespace", String(MAX_NAMESPACE), nullable=False),
        Column("service", String(MAX_SERVICE_NAME), nullable=False),
        Column("state", String(MAX_STATE), nullable=False),
        PrimaryKeyConstraint("service_key"),
        **MYSQL_TABLE_OPTIONS,
    )
    return Tables(prefix, metadata, links, pod_states, workload_states)
