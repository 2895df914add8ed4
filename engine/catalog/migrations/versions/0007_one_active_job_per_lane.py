"""One active job per lane of an org, enforced by the catalog (issue 14, decision 0016).

- ``jobs.lane``: ``full`` for a full of every object, else ``incremental``
  (``engine.model.lane_of``), stamped when the row is written.
- ``ux_jobs_org_active_lane``: a partial unique index on ``(org_id, lane)`` over queued and
  running rows. Two admissions of one org in the same instant both passed the policy check
  before; now the second one's insert fails and it is refused with SFV-601.

Active rows of one lane that exist together when this migration runs (possible only through that
race) are resolved first: all but the newest are closed ``failed`` with SFV-804.

Revision ID: 0007_one_active_job_per_lane
Revises: 0006_job_service
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_one_active_job_per_lane"
down_revision: str | None = "0006_job_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "state IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lane", sa.String(16), nullable=True))
    op.execute(
        "UPDATE jobs SET lane = CASE WHEN kind = 'full' AND (requested_objects IS NULL "
        "OR CAST(requested_objects AS TEXT) = 'null') THEN 'full' ELSE 'incremental' END"
    )
    op.execute(
        "UPDATE jobs SET state = 'failed', error_code = 'SFV-804', "
        "error_message = 'closed when the catalog was upgraded: another job of its lane was active', "
        "finished_at = CURRENT_TIMESTAMP "
        f"WHERE {ACTIVE} AND EXISTS (SELECT 1 FROM jobs AS newer WHERE newer.org_id = jobs.org_id "
        f"AND newer.lane = jobs.lane AND newer.{ACTIVE} AND newer.created_at > jobs.created_at)"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("lane", existing_type=sa.String(16), nullable=False)
    op.create_index(
        "ux_jobs_org_active_lane", "jobs", ["org_id", "lane"], unique=True,
        sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ux_jobs_org_active_lane", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lane")
