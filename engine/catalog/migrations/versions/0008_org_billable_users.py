"""The last count of an org's billable users (issue 15, finding 21: the tile shows seats).

- ``orgs.billable_users``: active Standard users of the production org, as the job service last
  counted them in Salesforce (it counts at every admission of an org with purchased seats).
- ``orgs.billable_users_counted_at``: when.

The overview reads them so an org's tile says "backups stopped: seats exceeded" without a call to
Salesforce per tile.

Revision ID: 0008_org_billable_users
Revises: 0007_one_active_job_per_lane
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_org_billable_users"
down_revision: str | None = "0007_one_active_job_per_lane"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orgs", sa.Column("billable_users", sa.Integer(), nullable=True))
    op.add_column("orgs", sa.Column("billable_users_counted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.drop_column("billable_users_counted_at")
        batch.drop_column("billable_users")
