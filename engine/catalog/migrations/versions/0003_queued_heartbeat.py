"""Queued jobs survive a restart: a heartbeat on exports and compares.

- ``exports.heartbeat_at`` / ``compares.heartbeat_at``: stamped when the row goes ``running``
  and refreshed by the process that runs it; a ``running`` row whose heartbeat is older than
  ``Settings.queued_stale_after_seconds`` belongs to a process that died and is closed
  ``failed`` with SFV-713 when a service starts (and on each scheduler tick).
- ``ix_exports_state`` / ``ix_compares_state``: that recovery looks rows up by state across orgs.

Revision ID: 0003_queued_heartbeat
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_queued_heartbeat"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("exports", "compares")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        op.create_index(f"ix_{table}_state", table, ["state"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_state", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("heartbeat_at")
