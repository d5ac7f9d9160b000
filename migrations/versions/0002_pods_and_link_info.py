"""Pods come and go: links.service_key + updated_at, the pod index, state TTLs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:00:00

* ``links.service_key``: digest of (namespace, service), the same key as the
  state tables'; existing rows get it computed in Python from their
  ``namespace`` and ``service`` columns (one UPDATE per distinct service).
* ``links.updated_at``: milliseconds of the last set/refresh; existing rows
  get the time of the migration (their real history is unknown).
* ``ix_<prefix>links_pod (service_key, pod, link_key, expires_at)``: serves
  `pod_links_page` (one pod's links in key order after a cursor) and
  `count_pod_links` (live links per pod of one service, from the index only).
* ``pod_states.expires_at`` (NULL: permanent) and its index, for heartbeats.

Both new link columns are added nullable, filled, then made NOT NULL (in
batch mode, which rebuilds the table on SQLite). Frozen once released.
"""

from __future__ import annotations

import time
from hashlib import sha256
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _prefix() -> str:
    return str(context.config.attributes["table_prefix"])


def _digest() -> Any:
    return sa.LargeBinary(32).with_variant(mysql.BINARY(32), "mysql", "mariadb")


def _service_key(namespace: str, service: str) -> bytes:
    # Copied here on purpose (not imported): a migration must keep computing
    # what it computed when it was written. Same encoding as backends/sql/keys.py.
    chunks = [b"service"]
    for part in (namespace, service):
        data = part.encode("utf-8")
        chunks.append(len(data).to_bytes(4, "big"))
        chunks.append(data)
    return sha256(b"".join(chunks)).digest()


def upgrade() -> None:
    p = _prefix()
    links_name = f"{p}links"
    op.add_column(links_name, sa.Column("service_key", _digest(), nullable=True))
    op.add_column(links_name, sa.Column("updated_at", sa.BigInteger(), nullable=True))

    links = sa.table(
        links_name,
        sa.column("namespace", sa.String()),
        sa.column("service", sa.String()),
        sa.column("service_key", _digest()),
        sa.column("updated_at", sa.BigInteger()),
    )
    bind = op.get_bind()
    services = bind.execute(sa.select(links.c.namespace, links.c.service).distinct()).all()
    for namespace, service in services:
        bind.execute(
            sa.update(links)
            .where(links.c.namespace == namespace, links.c.service == service)
            .values(service_key=_service_key(namespace, service))
        )
    bind.execute(sa.update(links).values(updated_at=int(time.time() * 1000)))

    with op.batch_alter_table(links_name) as batch:
        batch.alter_column("service_key", existing_type=_digest(), nullable=False)
        batch.alter_column("updated_at", existing_type=sa.BigInteger(), nullable=False)
    op.create_index(
        f"ix_{p}links_pod", links_name, ["service_key", "pod", "link_key", "expires_at"]
    )
    op.add_column(f"{p}pod_states", sa.Column("expires_at", sa.BigInteger(), nullable=True))
    op.create_index(f"ix_{p}pod_states_expires_at", f"{p}pod_states", ["expires_at"])


def downgrade() -> None:
    p = _prefix()
    op.drop_index(f"ix_{p}pod_states_expires_at", table_name=f"{p}pod_states")
    with op.batch_alter_table(f"{p}pod_states") as batch:
        batch.drop_column("expires_at")
    op.drop_index(f"ix_{p}links_pod", table_name=f"{p}links")
    with op.batch_alter_table(f"{p}links") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("service_key")
