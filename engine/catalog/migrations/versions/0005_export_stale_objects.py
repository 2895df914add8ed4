"""An export says which of its objects are not as of the exported job (issue 14, defect 5).

- ``exports.stale_objects``: a JSON list, one item per object of the export whose data is not as
  of the exported job: ``{"object", "as_of": "earlier_job" | "absent", "as_of_job", "error_code"}``
  (the object failed in that job, or the job did not include it; ``as_of_job`` is the newest job
  of the cycle that captured it). Empty when every object is as of the job; null on exports
  recorded before this revision.

Revision ID: 0005_export_stale_objects
Revises: 0004_files_unavailable
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_export_stale_objects"
down_revision: str | None = "0004_files_unavailable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("exports", sa.Column("stale_objects", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("stale_objects")
