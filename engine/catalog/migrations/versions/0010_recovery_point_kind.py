"""Jobs of kind ``recovery_point`` (issue 17, decision 0026).

- ``jobs.kind``: the check constraint ``ck_jobs_kind`` admits ``recovery_point`` beside ``full``
  and ``incremental`` (a recovery point at an instant, materialised as a job of its own cycle).
- ``org_settings.cdp_enabled`` (false) and ``cdp_objects`` (JSON list, empty): continuous data
  protection on/off and the protected objects (``sfvault cdp enable|disable``).

Revision ID: 0010_recovery_point_kind
Revises: 0009_job_pruned
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_recovery_point_kind"
down_revision: str | None = "0009_job_pruned"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "org_settings", sa.Column("cdp_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("org_settings", sa.Column("cdp_objects", _json(), nullable=False, server_default="[]"))
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_kind"), type_="check")
        batch.create_check_constraint(
            op.f("ck_jobs_kind"), "kind IN ('full', 'incremental', 'recovery_point')"
        )


def downgrade() -> None:
    with op.batch_alter_table("org_settings") as batch:
        batch.drop_column("cdp_objects")
        batch.drop_column("cdp_enabled")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_kind"), "kind IN ('full', 'incremental')")
