"""Files the backup user could not back up, per object of a job (issue 5, Files).

- ``job_objects.files_unavailable``: file bodies (ContentVersion, Attachment, Document ...) that
  Salesforce answered with 403 or 404 although their record was in the query result.
- ``job_objects.warning_code`` / ``warning_message``: a warning on an object that still
  succeeded, e.g. SFV-805 on ContentVersion and ContentDocument when the backup user lacks
  "Query All Files" (only the files shared with it were backed up).

Revision ID: 0004_files_unavailable
Revises: 0003_queued_heartbeat
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_files_unavailable"
down_revision: str | None = "0003_queued_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "job_objects", sa.Column("files_unavailable", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("job_objects", sa.Column("warning_code", sa.String(16), nullable=True))
    op.add_column("job_objects", sa.Column("warning_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_objects") as batch:
        batch.drop_column("warning_message")
        batch.drop_column("warning_code")
        batch.drop_column("files_unavailable")
