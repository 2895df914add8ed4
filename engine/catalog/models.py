"""The catalog's tables: SQLAlchemy 2 typed declarative models.

The schema is owned by the Alembic migrations in ``engine/catalog/migrations/versions``; these
models must describe exactly what the newest migration creates (a test compares them).
Conventions:

- Every timestamp is a :class:`UTCDateTime`: timezone-aware UTC in Python on every database.
  Naive datetimes are refused when written, so local times never sneak in.
- Every enumerated column is a short string with a CHECK constraint listing its values (no
  native database enums, so adding a value is a plain migration on SQLite and PostgreSQL).
- Secrets (org credentials, export passwords) are stored only as sealed blobs
  (``*_sealed`` columns); the catalog never sees them in clear (see :mod:`engine.catalog.secrets`).
- Counters are ``BigInteger``: a big org has billions of rows and terabytes of data.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.model import JobKind, JobState, JobTrigger, Role

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time as text (which sorts
    correctly because every value is UTC). Writing a naive datetime raises ``ValueError``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the catalog stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> JSON[Any]:
    """JSON on SQLite, JSONB on PostgreSQL."""
    return JSON().with_variant(JSONB(), "postgresql")


class AuthKind(enum.StrEnum):
    PASSWORD = "password"
    CLIENT_CREDENTIALS = "client_credentials"
    REFRESH_TOKEN = "refresh_token"
    JWT = "jwt"
    SESSION_ID = "session_id"


class EventLogs(enum.StrEnum):
    OFF = "off"
    DAILY = "daily"
    HOURLY = "hourly"


ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)
ACTIVE_LANE_WHERE = "state IN ('queued', 'running')"


class ObjectState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ExportKind(enum.StrEnum):
    RECORDS = "records"
    FILES = "files"


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    MYSQL = "mysql"
    FILES = "files"


class ExportScope(enum.StrEnum):
    CHANGED = "changed"
    CYCLE = "cycle"


class ExportState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def enum_check(column: str, values: type[enum.StrEnum]) -> CheckConstraint:
    """``CHECK (column IN (...))`` named ``ck_<table>_<column>``."""
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {
        datetime: UTCDateTime(),
        date: Date(),
        time: Time(),
        dict[str, Any]: json_type(),
        list[str]: json_type(),
        list[dict[str, Any]]: json_type(),
        bytes: LargeBinary(),
    }


# --- orgs ----------------------------------------------------------------------------------


class Org(Base):
    """A connected Salesforce org.

    ``credentials_sealed`` is the integration user's credentials sealed by a
    :class:`~engine.catalog.secrets.Sealer`; it is empty for an org recreated by
    ``catalog rebuild`` until an operator connects it again.
    """

    __tablename__ = "orgs"
    __table_args__ = (
        enum_check("auth_kind", AuthKind),
        CheckConstraint("purchased_seats >= 0", name="seats"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    instance_url: Mapped[str | None] = mapped_column(String(500))
    sf_org_id: Mapped[str | None] = mapped_column(String(18))
    auth_kind: Mapped[str] = mapped_column(String(32), default=AuthKind.PASSWORD.value)
    credentials_sealed: Mapped[bytes | None]
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    connected_at: Mapped[datetime]
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_location: Mapped[str | None] = mapped_column(String(1000))
    plan: Mapped[str | None] = mapped_column(String(64))
    subscription_expires_at: Mapped[datetime | None]
    purchased_seats: Mapped[int | None] = mapped_column(Integer)
    billable_users: Mapped[int | None] = mapped_column(Integer)
    """Active Standard users as last counted in Salesforce (the tile's seats check); None = never."""
    billable_users_counted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    settings: Mapped[OrgSettings] = relationship(
        back_populates="org", cascade="all, delete-orphan", passive_deletes=True, uselist=False
    )

    def __repr__(self) -> str:  # never show the sealed credentials
        return f"Org(id={self.id!r}, name={self.name!r})"


class OrgSettings(Base):
    """Backup settings of one org (PRODUCT.md "Backup settings", "Permission checks").

    ``first_start_time`` is a wall-clock time in the org's time zone.
    """

    __tablename__ = "org_settings"
    __table_args__ = (
        enum_check("event_logs", EventLogs),
        CheckConstraint("jobs_per_day BETWEEN 1 AND 24", name="jobs_per_day"),
        CheckConstraint("permission_check_interval_days >= 1", name="permission_check_interval"),
    )

    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True)
    backup_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    include_feed: Mapped[bool] = mapped_column(Boolean, default=False)
    include_share: Mapped[bool] = mapped_column(Boolean, default=False)
    event_logs: Mapped[str] = mapped_column(String(16), default=EventLogs.OFF.value)
    excluded_objects: Mapped[list[str]] = mapped_column(default=list)
    excluded_metadata_types: Mapped[list[str]] = mapped_column(default=list)
    jobs_per_day: Mapped[int] = mapped_column(Integer, default=1)
    first_start_time: Mapped[time] = mapped_column(default=time(0, 0))
    permission_check_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    permission_check_start: Mapped[datetime | None]
    permission_check_interval_days: Mapped[int] = mapped_column(Integer, default=30)
    # continuous data protection (decision 0026, migration 0010): on/off and the protected objects
    cdp_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cdp_objects: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    # its start and interval (decision 0033, migration 0012): when the service's subscriber starts
    # streaming (None: at once) and the longest a received change waits before it is sealed
    cdp_start_at: Mapped[datetime | None]
    cdp_interval_s: Mapped[int] = mapped_column(Integer, default=3600, server_default="3600")
    updated_at: Mapped[datetime]

    org: Mapped[Org] = relationship(back_populates="settings")


# --- jobs ----------------------------------------------------------------------------------


class Job(Base):
    """One backup job. ``snapshot_ref`` names the committed manifest, set only on commit."""

    __tablename__ = "jobs"
    __table_args__ = (
        enum_check("kind", JobKind),
        enum_check("trigger", JobTrigger),
        enum_check("state", JobState),
        CheckConstraint("records >= 0 AND bytes >= 0 AND metadata_items >= 0", name="counts"),
        Index("ix_jobs_org_created", "org_id", "created_at"),
        Index("ix_jobs_org_state", "org_id", "state"),
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_org_scheduled_for", "org_id", "scheduled_for", unique=True),
        # one active job per lane of an org (decision 0016): two admissions racing cannot both queue
        Index(
            "ux_jobs_org_active_lane",
            "org_id",
            "lane",
            unique=True,
            sqlite_where=text(ACTIVE_LANE_WHERE),
            postgresql_where=text(ACTIVE_LANE_WHERE),
        ),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16), default=JobTrigger.SCHEDULED.value)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    cycle_id: Mapped[str | None] = mapped_column(String(64))
    requested_objects: Mapped[list[str] | None] = mapped_column(json_type())
    lane: Mapped[str] = mapped_column(String(16))  # engine.model.lane_of(kind, requested_objects)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_items: Mapped[int] = mapped_column(Integer, default=0)
    snapshot_ref: Mapped[str | None] = mapped_column(String(500))
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    # the schedule slot of a scheduled job or recorded skip; unique per org (migration 0002)
    scheduled_for: Mapped[datetime | None]
    # the owning process's last sign of life while queued or running (migration 0005)
    heartbeat_at: Mapped[datetime | None]
    # started with `sfvault backup --override-policy`; the refusal it passed, if any (migration 0005)
    policy_override: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    override_reason: Mapped[str | None] = mapped_column(Text)
    # when `sfvault prune` removed the job's snapshot (migration 0009); the state stays as it ran
    pruned_at: Mapped[datetime | None]
    # a recovery_point job: the instant and, per object, the base job and the change events it
    # holds (count, replay id range, commit time range; migration 0012, decision 0033)
    recovery_point: Mapped[dict[str, Any] | None] = mapped_column(json_type())

    objects: Mapped[list[JobObject]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="JobObject.object_name",
    )
    errors: Mapped[list[JobError]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True, order_by="JobError.id"
    )


class JobObject(Base):
    """The result of one object within one job (a row of the job report)."""

    __tablename__ = "job_objects"
    __table_args__ = (
        enum_check("state", ObjectState),
        UniqueConstraint("job_id", "object_name", name="uq_job_objects_job_object"),
        CheckConstraint(
            "records >= 0 AND bytes >= 0 AND rest_calls >= 0 AND bulk2_jobs >= 0 AND bulk2_pages >= 0",
            name="counts",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(128), ForeignKey("jobs.id", ondelete="CASCADE"))
    object_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=ObjectState.PENDING.value)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    rest_calls: Mapped[int] = mapped_column(Integer, default=0)
    bulk2_jobs: Mapped[int] = mapped_column(Integer, default=0)
    bulk2_pages: Mapped[int] = mapped_column(Integer, default=0)
    # API calls by API (migration 0011, decision 0027): REST calls are ``rest_calls``; the total
    # that counts against DailyApiRequests is rest_calls + bulk2_calls + bulk1_calls
    bulk2_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bulk1_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bulk1_batches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    # file bodies answered 403/404, and a warning on an object that succeeded (migration 0004)
    files_unavailable: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    warning_code: Mapped[str | None] = mapped_column(String(16))
    warning_message: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="objects")


class JobError(Base):
    """An error met by a job (several per object are possible)."""

    __tablename__ = "job_errors"
    __table_args__ = (Index("ix_job_errors_job", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(128), ForeignKey("jobs.id", ondelete="CASCADE"))
    object_name: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    occurred_at: Mapped[datetime]

    job: Mapped[Job] = relationship(back_populates="errors")


# --- exports -------------------------------------------------------------------------------


class Export(Base):
    """A records or files export (issue 6). The ZIP password is kept only sealed."""

    __tablename__ = "exports"
    __table_args__ = (
        enum_check("kind", ExportKind),
        enum_check("format", ExportFormat),
        enum_check("scope", ExportScope),
        enum_check("state", ExportState),
        CheckConstraint("size_bytes >= 0", name="size"),
        Index("ix_exports_org_created", "org_id", "created_at"),
        Index("ix_exports_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    objects: Mapped[list[str]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), default=ExportState.QUEUED.value)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    location: Mapped[str | None] = mapped_column(String(1000))
    password_sealed: Mapped[bytes | None]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # refreshed by the process running it; a stale one means that process died (migration 0003)
    heartbeat_at: Mapped[datetime | None]
    # objects not as of the exported job (``ObjectAsOf.to_dict`` items; None: not known, migration 0005)
    stale_objects: Mapped[list[dict[str, Any]] | None] = mapped_column(json_type())

    def __repr__(self) -> str:
        return f"Export(id={self.id!r}, state={self.state!r})"


class Compare(Base):
    """A compare of two jobs, run as a job and followed in the job monitor (migration 0002).

    ``summary`` holds per object the added / changed / removed counts once it has finished.
    """

    __tablename__ = "compares"
    __table_args__ = (
        enum_check("state", ExportState),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_compares_org_created", "org_id", "created_at"),
        Index("ix_compares_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("jobs.id", ondelete="SET NULL"))
    against_job_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("jobs.id", ondelete="SET NULL")
    )
    objects: Mapped[list[str] | None] = mapped_column(json_type())
    state: Mapped[str] = mapped_column(String(16), default=ExportState.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    summary: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    # refreshed by the process running it; a stale one means that process died (migration 0003)
    heartbeat_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"Compare(id={self.id!r}, state={self.state!r})"


# --- API usage -----------------------------------------------------------------------------


class ApiUsage(Base):
    """An append-only ledger of Salesforce API calls.

    One row per report (a job, or a part of it): per-job totals are the sum over ``job_id``,
    per API (``rest_calls``, ``bulk2_calls``, ``bulk1_calls``; their sum is the job's "API calls",
    decision 0027; ``bulk2_jobs``, ``bulk2_pages`` and ``bulk1_batches`` count jobs, pages and
    batches, not calls),
    per-day totals the sum over ``(org_id, day)``; ``remaining`` / ``daily_limit`` are the
    org's allowance as last read (``Sforce-Limit-Info`` or ``/limits``). Appending instead of
    updating counters means concurrent writers never lose an increment.
    """

    __tablename__ = "api_usage"
    __table_args__ = (
        CheckConstraint("rest_calls >= 0 AND bulk2_jobs >= 0 AND bulk2_pages >= 0", name="counts"),
        Index("ix_api_usage_org_day", "org_id", "day"),
        Index("ix_api_usage_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("jobs.id", ondelete="SET NULL"))
    day: Mapped[date]
    rest_calls: Mapped[int] = mapped_column(Integer, default=0)
    bulk2_jobs: Mapped[int] = mapped_column(Integer, default=0)
    bulk2_pages: Mapped[int] = mapped_column(Integer, default=0)
    bulk2_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bulk1_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bulk1_batches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    remaining: Mapped[int | None] = mapped_column(Integer)
    daily_limit: Mapped[int | None] = mapped_column(Integer)
    recorded_at: Mapped[datetime]


# --- permission reports, tokens, outbox ----------------------------------------------------


class PermissionReport(Base):
    """The three lists of a permission check (PRODUCT.md "Permission checks")."""

    __tablename__ = "permission_reports"
    __table_args__ = (
        enum_check("trigger", JobTrigger),
        Index("ix_permission_reports_org_created", "org_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16), default=JobTrigger.SCHEDULED.value)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    objects: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    user_permissions: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class ApiToken(Base):
    """An API token: only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (enum_check("role", Role),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id!r}, name={self.name!r}, role={self.role!r})"


class OutboxMessage(Base):
    """A notification waiting to be sent (SMTP when configured)."""

    __tablename__ = "outbox"
    __table_args__ = (
        enum_check("state", OutboxState),
        Index("ix_outbox_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
