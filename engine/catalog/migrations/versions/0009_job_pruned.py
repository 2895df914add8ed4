"""A job whose snapshot ``sfvault prune`` removed says so (issue 15, finding 15).

- ``jobs.pruned_at``: when prune removed the job's snapshot (retention); null while the snapshot
  exists. The job keeps its state (what happened when it ran); listings show it as pruned, and
  compare/export refuse it with SFV-714.

Revision ID: 0009_job_pruned
Revises: 0008_org_billable_users
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_job_pruned"
down_revision: str | None = "0008_org_billable_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pruned_at")
