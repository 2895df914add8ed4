"""API calls by API in the usage ledger and the job report (issue 15 finding 17, issue 16; decision 0027).

- ``api_usage`` and ``job_objects`` get ``bulk2_calls`` (Bulk API 2.0 requests: create, polls,
  result pages, delete), ``bulk1_calls`` (Bulk API 1.0 requests: job, batch, status, result
  lists, result files) and ``bulk1_batches`` (Bulk API 1.0 batches, PK chunks included: they
  count against ``DailyBulkApiBatches``, not against the calls). ``rest_calls`` now holds every
  REST request (file-body downloads included). The allowance-counted total is
  ``rest_calls + bulk2_calls + bulk1_calls`` (``engine.model.api_calls_of``).
- Rows written before this migration knew only REST calls, Bulk 2.0 jobs and result pages: their
  ``bulk2_calls`` is set to ``bulk2_jobs + bulk2_pages`` (the total they showed before; their
  polls were never recorded), ``bulk1_calls`` and ``bulk1_batches`` to 0.

Revision ID: 0011_api_calls_by_api
Revises: 0010_recovery_point_kind (rechained on merge after any 0010)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_api_calls_by_api"
down_revision: str | None = "0010_recovery_point_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("api_usage", "job_objects")
COLUMNS = ("bulk2_calls", "bulk1_calls", "bulk1_batches")


def upgrade() -> None:
    for table in TABLES:
        for column in COLUMNS:
            op.add_column(table, sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        op.execute(f"UPDATE {table} SET bulk2_calls = bulk2_jobs + bulk2_pages")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in COLUMNS:
                batch.drop_column(column)
