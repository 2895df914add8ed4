"""Continuous data protection: first start time and interval per org (issue 17, decision 0033).

- ``org_settings.cdp_start_at`` (nullable instant): when the service's subscriber of the org starts
  streaming; null = as soon as protection is on.
- ``org_settings.cdp_interval_s`` (3600): the longest a received change waits in the subscriber
  before its segment is sealed (the bound of the recovery-point objective beyond delivery).
- ``jobs.recovery_point`` (nullable JSON): what a ``recovery_point`` job holds (the instant; per
  object the base job and the change events: count, replay id range, commit time range).

Revision ID: 0012_cdp_start_interval
Revises: 0011_api_calls_by_api
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_cdp_start_interval"
down_revision: str | None = "0011_api_calls_by_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("recovery_point", _json(), nullable=True))
    op.add_column("org_settings", sa.Column("cdp_start_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "org_settings", sa.Column("cdp_interval_s", sa.Integer(), nullable=False, server_default="3600")
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("recovery_point")
    with op.batch_alter_table("org_settings") as batch:
        batch.drop_column("cdp_interval_s")
        batch.drop_column("cdp_start_at")
