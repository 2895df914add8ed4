"""Initial catalog: orgs, settings, jobs, job objects and errors, exports, API usage,
permission reports, API tokens and the notification outbox.

The values of every CHECK constraint are written out here on purpose: a migration describes
the schema as it was at this revision and never imports the models.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.JSON[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _in(table: str, column: str, *values: str) -> sa.CheckConstraint:
    """``CHECK (column IN (...))`` named like the models' naming convention."""
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    ref_table = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{ref_table}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("instance_url", sa.String(500), nullable=True),
        sa.Column("sf_org_id", sa.String(18), nullable=True),
        sa.Column("auth_kind", sa.String(32), nullable=False),
        sa.Column("credentials_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("connected_at", _ts(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("storage_location", sa.String(1000), nullable=True),
        sa.Column("plan", sa.String(64), nullable=True),
        sa.Column("subscription_expires_at", _ts(), nullable=True),
        sa.Column("purchased_seats", sa.Integer(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        _in("orgs", "auth_kind", "password", "client_credentials", "refresh_token", "jwt", "session_id"),
        sa.CheckConstraint("purchased_seats >= 0", name=op.f("ck_orgs_seats")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("name", name=op.f("uq_orgs_name")),
    )
    op.create_table(
        "org_settings",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("backup_enabled", sa.Boolean(), nullable=False),
        sa.Column("include_feed", sa.Boolean(), nullable=False),
        sa.Column("include_share", sa.Boolean(), nullable=False),
        sa.Column("event_logs", sa.String(16), nullable=False),
        sa.Column("excluded_objects", _json(), nullable=False),
        sa.Column("excluded_metadata_types", _json(), nullable=False),
        sa.Column("jobs_per_day", sa.Integer(), nullable=False),
        sa.Column("first_start_time", sa.Time(), nullable=False),
        sa.Column("permission_check_enabled", sa.Boolean(), nullable=False),
        sa.Column("permission_check_start", _ts(), nullable=True),
        sa.Column("permission_check_interval_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        _in("org_settings", "event_logs", "off", "daily", "hourly"),
        sa.CheckConstraint("jobs_per_day BETWEEN 1 AND 24", name=op.f("ck_org_settings_jobs_per_day")),
        sa.CheckConstraint(
            "permission_check_interval_days >= 1", name=op.f("ck_org_settings_permission_check_interval")
        ),
        _fk("org_settings", "org_id", "orgs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_settings")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cycle_id", sa.String(64), nullable=True),
        sa.Column("requested_objects", _json(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("metadata_items", sa.Integer(), nullable=False),
        sa.Column("snapshot_ref", sa.String(500), nullable=True),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        _in("jobs", "kind", "full", "incremental"),
        _in("jobs", "trigger", "scheduled", "manual"),
        _in("jobs", "state", "queued", "running", "succeeded", "partial", "failed", "cancelled", "skipped"),
        sa.CheckConstraint(
            "records >= 0 AND bytes >= 0 AND metadata_items >= 0", name=op.f("ck_jobs_counts")
        ),
        _fk("jobs", "org_id", "orgs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_org_created", "jobs", ["org_id", "created_at"])
    op.create_index("ix_jobs_org_state", "jobs", ["org_id", "state"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_objects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("rest_calls", sa.Integer(), nullable=False),
        sa.Column("bulk2_jobs", sa.Integer(), nullable=False),
        sa.Column("bulk2_pages", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        _in("job_objects", "state", "pending", "running", "succeeded", "failed", "skipped"),
        sa.CheckConstraint(
            "records >= 0 AND bytes >= 0 AND rest_calls >= 0 AND bulk2_jobs >= 0 AND bulk2_pages >= 0",
            name=op.f("ck_job_objects_counts"),
        ),
        _fk("job_objects", "job_id", "jobs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_objects")),
        sa.UniqueConstraint("job_id", "object_name", name="uq_job_objects_job_object"),
    )
    op.create_table(
        "job_errors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=True),
        sa.Column("occurred_at", _ts(), nullable=False),
        _fk("job_errors", "job_id", "jobs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_errors")),
    )
    op.create_index("ix_job_errors_job", "job_errors", ["job_id"])
    op.create_table(
        "exports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("objects", _json(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.String(1000), nullable=True),
        sa.Column("password_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("error_code", sa.String(16), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        _in("exports", "kind", "records", "files"),
        _in("exports", "format", "csv", "mysql", "files"),
        _in("exports", "scope", "changed", "cycle"),
        _in("exports", "state", "queued", "running", "succeeded", "failed", "cancelled"),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_exports_size")),
        _fk("exports", "job_id", "jobs.id", "SET NULL"),
        _fk("exports", "org_id", "orgs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index("ix_exports_org_created", "exports", ["org_id", "created_at"])
    op.create_table(
        "api_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rest_calls", sa.Integer(), nullable=False),
        sa.Column("bulk2_jobs", sa.Integer(), nullable=False),
        sa.Column("bulk2_pages", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "rest_calls >= 0 AND bulk2_jobs >= 0 AND bulk2_pages >= 0", name=op.f("ck_api_usage_counts")
        ),
        _fk("api_usage", "job_id", "jobs.id", "SET NULL"),
        _fk("api_usage", "org_id", "orgs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_usage")),
    )
    op.create_index("ix_api_usage_org_day", "api_usage", ["org_id", "day"])
    op.create_index("ix_api_usage_job", "api_usage", ["job_id"])
    op.create_table(
        "permission_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("objects", _json(), nullable=False),
        sa.Column("user_permissions", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        _in("permission_reports", "trigger", "scheduled", "manual"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_permission_reports_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_reports")),
    )
    op.create_index("ix_permission_reports_org_created", "permission_reports", ["org_id", "created_at"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_used_at", _ts(), nullable=True),
        sa.Column("revoked_at", _ts(), nullable=True),
        _in("api_tokens", "role", "admin", "operator", "viewer"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", _json(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("sent_at", _ts(), nullable=True),
        _in("outbox", "state", "pending", "sent", "failed"),
        _fk("outbox", "org_id", "orgs.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_state_created", "outbox", ["state", "created_at"])


def downgrade() -> None:
    for table in (
        "outbox",
        "api_tokens",
        "permission_reports",
        "api_usage",
        "exports",
        "job_errors",
        "job_objects",
        "jobs",
        "org_settings",
        "orgs",
    ):
        op.drop_table(table)
