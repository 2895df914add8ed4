"""Jobs of kind ``recovery_point`` (issue 17, decision 0026).

- ``jobs.kind``: the check constraint ``ck_jobs_kind`` admits ``recovery_point`` beside ``full``
  and ``incremental`` (a recovery point at an instant, materialised as a job of its own cycle).

Revision ID: 0010_recovery_point_kind
Revises: 0009_job_pruned
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_recovery_point_kind"
down_revision: str | None = "0009_job_pruned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_kind"), type_="check")
        batch.create_check_constraint(
            op.f("ck_jobs_kind"), "kind IN ('full', 'incremental', 'recovery_point')"
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_kind"), "kind IN ('full', 'incremental')")
