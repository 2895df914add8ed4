"""The job service (issue 14): heartbeats of backup jobs and the operator's policy override.

- ``jobs.heartbeat_at``: stamped when the job service writes the ``queued`` row and refreshed by
  the process that owns the job while it is queued or running; an active job whose heartbeat is
  older than ``Settings.job_stale_after_seconds`` belongs to a process that died and is closed
  ``failed`` with SFV-804 (the scheduler's tick, and the next admission of the org). Active rows
  that exist when this migration runs get their start (else creation) as a first heartbeat.
- ``jobs.policy_override``: the job was started with ``sfvault backup --override-policy``;
  ``jobs.override_reason`` is the refusal the override passed (null when the policy allowed it).

Revision ID: 0006_job_service
Revises: 0005_export_stale_objects
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_job_service"
down_revision: str | None = "0005_export_stale_objects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("policy_override", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("jobs", sa.Column("override_reason", sa.Text(), nullable=True))
    op.execute(
        "UPDATE jobs SET heartbeat_at = COALESCE(started_at, created_at) WHERE state IN ('queued', 'running')"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("override_reason")
        batch.drop_column("policy_override")
        batch.drop_column("heartbeat_at")
