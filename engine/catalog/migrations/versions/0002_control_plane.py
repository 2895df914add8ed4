"""Control plane (issue 7): scheduled slots on jobs, compare jobs, export progress.

- ``jobs.scheduled_for``: the schedule slot a scheduled job (or recorded skip) belongs to. A
  unique index on ``(org_id, scheduled_for)`` makes a slot produce at most one job even when
  two scheduler loops race or the service restarts mid-tick (NULLs, manual jobs, never clash).
- ``compares``: compare runs as a job followed in the job monitor (PRODUCT.md "Data").
- ``exports.progress``: 0..1, for the job monitor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.JSON[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("scheduled_for", _ts(), nullable=True))
    op.create_index("ix_jobs_org_scheduled_for", "jobs", ["org_id", "scheduled_for"], unique=True)
    op.add_column("exports", sa.Column("progress", sa.Float(), nullable=False, server_default="0"))
    op.create_table(
        "compares",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=True),
        sa.Column("against_job_id", sa.String(128), nullable=True),
        sa.Column("objects", _json(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("summary", _json(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_compares_state"),
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_compares_progress")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_compares_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_compares_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["against_job_id"], ["jobs.id"], name=op.f("fk_compares_against_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compares")),
    )
    op.create_index("ix_compares_org_created", "compares", ["org_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_compares_org_created", table_name="compares")
    op.drop_table("compares")
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("progress")
    op.drop_index("ix_jobs_org_scheduled_for", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("scheduled_for")
