"""Initial schema: links, pod states, workload states.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Frozen: later changes go in new revisions, never here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

MYSQL_TABLE: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _prefix() -> str:
    # Set by env.py; every table name starts with it.
    return str(context.config.attributes["table_prefix"])


def _digest() -> Any:
    return sa.LargeBinary(32).with_variant(mysql.BINARY(32), "mysql", "mariadb")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}links",
        sa.Column("link_key", _digest(), nullable=False),
        sa.Column("owner_key", _digest(), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("uid", sa.String(1024), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("pod", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("link_key"),
        **MYSQL_TABLE,
    )
    op.create_index(f"ix_{p}links_owner_key", f"{p}links", ["owner_key"])
    op.create_index(f"ix_{p}links_expires_at", f"{p}links", ["expires_at"])
    op.create_table(
        f"{p}pod_states",
        sa.Column("service_key", _digest(), nullable=False),
        sa.Column("pod", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("state", sa.String(4096), nullable=False),
        sa.PrimaryKeyConstraint("service_key", "pod"),
        **MYSQL_TABLE,
    )
    op.create_table(
        f"{p}workload_states",
        sa.Column("service_key", _digest(), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("state", sa.String(4096), nullable=False),
        sa.PrimaryKeyConstraint("service_key"),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}workload_states")
    op.drop_table(f"{p}pod_states")
    op.drop_index(f"ix_{p}links_expires_at", table_name=f"{p}links")
    op.drop_index(f"ix_{p}links_owner_key", table_name=f"{p}links")
    op.drop_table(f"{p}links")
