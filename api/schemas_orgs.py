"""Request and response models of the orgs endpoints (connect, tiles, details, settings).

Every value is checked here, before a handler runs: a malformed or out-of-range field answers
422 (SFV-903) naming it, and nothing is saved. Secrets are ``SecretStr`` and never echoed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from engine.errors import ConfigError, InvalidPolicySetting
from engine.jobs.credentials import grant_from_record
from engine.policy import DEFAULT_PLAN_QUOTAS, ReasonCode, org_zone

ORG_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
API_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,254}$"

ApiName = Annotated[str, Field(pattern=API_NAME_PATTERN, examples=["AccountHistory"])]


def check_time_zone(value: str) -> str:
    try:
        org_zone(value)
    except InvalidPolicySetting as exc:
        raise ValueError(exc.message) from exc
    return value


def check_optional_time_zone(value: str | None) -> str | None:
    return None if value is None else check_time_zone(value)


MAX_SEATS = 10_000_000
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)


def _iso_text(value: Any) -> Any:
    """Instants are ISO-8601 text: a bare number (``0``, an epoch) is refused, not read as 1970."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO-8601 date-time with a UTC offset, e.g. 2027-01-01T00:00:00Z")
    return value


def _in_range(value: datetime) -> datetime:
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise ValueError(f"must lie between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d}")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_text),
    AfterValidator(_in_range),
    Field(json_schema_extra={"format": "date-time"}),
]
"""An ISO-8601 date-time with an offset, between 2000-01-01 and 2100-01-01 (no epoch numbers)."""


def check_plan(value: str | None) -> str | None:
    if value is not None and value not in DEFAULT_PLAN_QUOTAS:
        raise ValueError(f"unknown plan {value!r}; known plans: {', '.join(sorted(DEFAULT_PLAN_QUOTAS))}")
    return value


class ConnectOrg(BaseModel):
    """``POST /v1/orgs``: the integration user's credentials and the org's subscription.

    Give username + password (+ security token) with the connected app's client id and secret
    (username-password flow), a refresh token with the client id, or only client id + secret
    (client-credentials flow against the My Domain URL).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "acme-prod",
                    "instance_url": "https://acme.my.salesforce.com",
                    "username": "backup@acme.com",
                    "password": "********",
                    "security_token": "********",
                    "client_id": "3MVG9...",
                    "client_secret": "********",
                    "time_zone": "Europe/Paris",
                    "plan": "standard",
                    "purchased_seats": 250,
                }
            ]
        },
    )

    name: str = Field(
        pattern=ORG_NAME_PATTERN, description="short name of the org in sfvault", examples=["acme-prod"]
    )
    instance_url: str = Field(
        pattern=r"^https?://[^\s/]+(/.*)?$", max_length=500, description="the org's My Domain URL",
        examples=["https://acme.my.salesforce.com"],
    )  # fmt: skip
    login_url: str | None = Field(
        None, pattern=r"^https?://[^\s/]+(/.*)?$", max_length=500,
        description="OAuth host (default https://login.salesforce.com)", examples=["https://test.salesforce.com"],
    )  # fmt: skip
    username: str | None = Field(
        None, max_length=255, description="integration user", examples=["backup@acme.com"]
    )
    password: SecretStr | None = Field(None, examples=["********"], description="its password")
    security_token: SecretStr | None = Field(None, examples=["********"], description="its security token")
    client_id: str | None = Field(
        None, examples=["3MVG9..."], max_length=500, description="connected app consumer key"
    )
    client_secret: SecretStr | None = Field(
        None, examples=["********"], description="connected app consumer secret"
    )
    refresh_token: SecretStr | None = Field(
        None, examples=["********"], description="a refresh token (refresh-token flow)"
    )
    ca_file: str | None = Field(
        None,
        examples=["/etc/sfvault/test-org-ca.pem"],
        max_length=1000,
        description="extra CA certificate file (test orgs)",
    )
    time_zone: str | None = Field(
        None,
        description="IANA zone of the schedule; none = the org's own (Organization.TimeZoneSidKey, "
        "read from Salesforce at connect)",
        examples=["Europe/Paris"],
    )
    storage_location: str | None = Field(
        None, min_length=1, max_length=1000,
        description="where the backups go; default: the service's repository", examples=["azure://backups/acme"],
    )  # fmt: skip
    plan: str | None = Field(
        None, description=f"subscription plan: one of {', '.join(DEFAULT_PLAN_QUOTAS)}; none = no quota",
        examples=["standard"],
    )  # fmt: skip
    purchased_seats: int | None = Field(
        None, ge=0, le=MAX_SEATS, description="seats bought; none = no limit", examples=[250]
    )
    subscription_expires_at: Instant | None = Field(
        None,
        description="first instant without a subscription; none = never",
        examples=["2027-11-01T00:00:00Z"],
    )

    _tz = field_validator("time_zone")(check_optional_time_zone)
    _plan = field_validator("plan")(check_plan)

    @model_validator(mode="after")
    def _makes_a_grant(self) -> ConnectOrg:
        """The given fields must make one of the OAuth grants (checked before any login)."""
        try:
            grant_from_record({k: v for k, v in self.credentials().items() if v})
        except ConfigError as exc:
            raise ValueError(exc.message) from exc
        return self

    def credentials(self) -> dict[str, Any]:
        """The keyword arguments of :func:`engine.jobs.credentials.credentials_record`."""

        def plain(v: SecretStr | None) -> str | None:
            return v.get_secret_value() if v is not None else None

        return {
            "instance_url": self.instance_url,
            "username": self.username,
            "password": plain(self.password),
            "security_token": plain(self.security_token),
            "client_id": self.client_id,
            "client_secret": plain(self.client_secret),
            "refresh_token": plain(self.refresh_token),
            "login_url": self.login_url,
            "ca_file": self.ca_file,
        }


class Connected(BaseModel):
    """What ``POST /v1/orgs`` answers (never the credentials)."""

    name: str = Field(description="the org's name in sfvault", examples=["acme-prod"])
    sf_org_id: str | None = Field(description="the Salesforce org id", examples=["00D000000000001AAA"])
    auth_kind: str = Field(description="the OAuth grant used", examples=["password"])
    time_zone: str = Field(description="IANA zone of the schedule", examples=["Europe/Paris"])
    storage_location: str | None = Field(
        description="where its backups go", examples=["azure://backups/acme"]
    )
    connected_at: datetime = Field(
        description="when it was connected; the schedule starts after it", examples=["2026-11-25T10:00:00Z"]
    )
    api_remaining: int | None = Field(description="daily API calls left at connect time", examples=[14_950])
    api_max: int | None = Field(description="the org's daily API allowance", examples=[15_000])


class LastJob(BaseModel):
    """The newest job of an org, as its tile shows it."""

    id: str = Field(
        description="the job id (sorts by creation time)", examples=["20261125T000000Z-ab12cd34ef56"]
    )
    state: str = Field(description="queued, running, succeeded, partial, failed, cancelled or skipped",
                       examples=["succeeded"])  # fmt: skip
    kind: str = Field(description="full or incremental", examples=["incremental"])
    trigger: str = Field(description="scheduled or manual", examples=["scheduled"])
    created_at: datetime = Field(description="when it was queued", examples=["2026-11-25T00:00:00Z"])
    started_at: datetime | None = Field(
        description="when it started running", examples=["2026-11-25T00:00:02Z"]
    )
    finished_at: datetime | None = Field(
        description="when it ended; none while it runs", examples=["2026-11-25T00:04:31Z"]
    )
    error_code: str | None = Field(description="why it failed or was skipped", examples=[None])


class StopReasonOut(BaseModel):
    """One reason protection is stopped now."""

    reason: ReasonCode = Field(description="why, as a stable string", examples=["seats_exceeded"])
    code: str | None = Field(description="its error code, see docs/TROUBLESHOOTING.md", examples=["SFV-604"])
    message: str = Field(
        description="what is wrong and how to fix it",
        examples=["the subscription of org acme expired at 2027-11-01T00:00:00+00:00; renew it ..."],
    )


class OrgTile(BaseModel):
    """One tile of the backup overview."""

    name: str = Field(description="the org's name in sfvault", examples=["acme-prod"])
    hidden: bool = Field(description="the tile is in the hidden section", examples=[False])
    last_job: LastJob | None = Field(description="the newest job, none before the first")
    next_job_at: datetime | None = Field(
        description="start of the next scheduled job in the org's time zone; "
        "none while the schedule is stopped",
        examples=["2026-11-26T00:00:00+01:00"],
    )
    schedule_stopped: ReasonCode | None = Field(
        description="why the schedule is stopped (none while it runs)", examples=[None]
    )
    schedule_stopped_code: str | None = Field(
        description="the error code of that reason, see docs/TROUBLESHOOTING.md", examples=[None]
    )
    stops: list[StopReasonOut] = Field(
        default_factory=list,
        description="every reason protection is stopped now (empty while it runs), each from the "
        "moment it applies: an expiry from the expiry instant on, not before",
    )
    protection_ends_at: datetime | None = Field(
        None,
        description="the subscription ends before the next slot would come: no scheduled job is left, "
        "and from this instant backups stop (SFV-603); none otherwise",
        examples=[None],
    )


class OrgDetails(OrgTile):
    """An org's details: its tile plus its connection, subscription and next jobs."""

    instance_url: str | None = Field(
        description="the org's My Domain URL", examples=["https://acme.my.salesforce.com"]
    )
    sf_org_id: str | None = Field(description="the Salesforce org id", examples=["00D000000000001AAA"])
    auth_kind: str = Field(description="the OAuth grant of its credentials", examples=["password"])
    time_zone: str = Field(description="IANA zone of the schedule", examples=["Europe/Paris"])
    connected_at: datetime = Field(description="when it was connected", examples=["2026-11-25T10:00:00Z"])
    storage_location: str | None = Field(
        description="where its backups go; none = not configured, or hidden from a viewer token "
        "(operators and admins see it)",
        examples=["azure://backups/acme"],
    )
    plan: str | None = Field(description="subscription plan; none = no quota", examples=["standard"])
    purchased_seats: int | None = Field(description="seats bought; none = no limit", examples=[250])
    subscription_expires_at: datetime | None = Field(
        description="first instant without a subscription; none = never", examples=["2027-11-01T00:00:00Z"]
    )
    next_incremental_at: datetime | None = Field(
        description="start of the next incremental job (org's time zone); none while stopped",
        examples=["2026-11-27T00:00:00+01:00"],
    )
    next_full_at: datetime | None = Field(
        description="start of the next full job: the first slot once the cycle ends, or the next slot "
        "without a full backup; none while stopped",
        examples=["2026-11-26T00:00:00+01:00"],
    )


class OrgSettingsOut(BaseModel):
    """An org's backup settings and the day's computed schedule."""

    backup_enabled: bool = Field(description="data backup on / off", examples=[True])
    include_feed: bool = Field(description="back up *Feed objects (AccountFeed...)", examples=[False])
    include_share: bool = Field(description="back up *Share objects (AccountShare...)", examples=[False])
    event_logs: Literal["off", "daily", "hourly"] = Field(description="event log files", examples=["off"])
    excluded_objects: list[str] = Field(
        description="object types not backed up", examples=[["AccountHistory"]]
    )
    excluded_metadata_types: list[str] = Field(
        description="metadata types not backed up", examples=[["Report"]]
    )
    jobs_per_day: int = Field(description="scheduled jobs per day, 1 to 24", ge=1, le=24, examples=[4])
    first_start_time: str = Field(description="local HH:MM of the first job of the day", examples=["01:30"])
    permission_check_enabled: bool = Field(
        description="scheduled permission checks on / off", examples=[True]
    )
    permission_check_start: datetime | None = Field(
        description="first scheduled permission check", examples=["2026-11-25T10:00:00Z"]
    )
    permission_check_interval_days: int = Field(description="days between permission checks", examples=[30])
    storage_location: str | None = Field(
        description="where the backups go; none = not configured, or hidden from a viewer token "
        "(operators and admins see it)",
        examples=["azure://backups/acme"],
    )
    time_zone: str = Field(description="IANA zone of the schedule", examples=["Europe/Paris"])
    plan: str | None = Field(None, description="subscription plan; none = no quota", examples=["standard"])
    purchased_seats: int | None = Field(None, description="seats bought; none = no limit", examples=[250])
    subscription_expires_at: datetime | None = Field(
        None,
        description="first instant without a subscription; none = never",
        examples=["2027-11-01T00:00:00Z"],
    )
    schedule_date: date = Field(
        description="the org-local day the schedule is shown for", examples=["2026-11-25"]
    )
    daily_schedule: list[str] = Field(
        description="local HH:MM start times of the day's jobs (daylight saving applied)",
        examples=[["01:30", "07:30", "13:30", "19:30"]],
    )
    daily_schedule_at: list[datetime] = Field(
        description="the same start times as instants in the org's time zone",
        examples=[["2026-11-25T01:30:00+01:00", "2026-11-25T07:30:00+01:00"]],
    )


_NOT_NULL = (
    "backup_enabled", "include_feed", "include_share", "event_logs", "excluded_objects",
    "excluded_metadata_types", "jobs_per_day", "first_start_time", "permission_check_enabled",
    "permission_check_interval_days", "time_zone",
)  # fmt: skip


class OrgSettingsPatch(BaseModel):
    """``PATCH /v1/orgs/{org}/settings``: only the fields given change; all are checked first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"jobs_per_day": 4, "first_start_time": "01:30", "event_logs": "daily"}]
        },
    )

    backup_enabled: bool | None = Field(None, examples=[True], description="data backup on / off")
    include_feed: bool | None = Field(None, examples=[False], description="back up *Feed objects")
    include_share: bool | None = Field(None, examples=[False], description="back up *Share objects")
    event_logs: Literal["off", "daily", "hourly"] | None = Field(
        None, examples=["daily"], description="event log files"
    )
    excluded_objects: list[ApiName] | None = Field(
        None, max_length=5000, description="object types not to back up", examples=[["AccountHistory"]]
    )
    excluded_metadata_types: list[ApiName] | None = Field(
        None, max_length=5000, description="metadata types not to back up", examples=[["Report"]]
    )
    jobs_per_day: int | None = Field(None, ge=1, le=24, description="jobs per day, 1 to 24", examples=[4])
    first_start_time: str | None = Field(
        None, pattern=HHMM_PATTERN, description="local HH:MM of the first job", examples=["01:30"]
    )
    permission_check_enabled: bool | None = Field(
        None, examples=[True], description="scheduled permission checks on / off"
    )
    permission_check_start: Instant | None = Field(
        None,
        description="first scheduled permission check (ISO-8601 with offset, 2000-01-01 to 2100-01-01)",
        examples=["2026-12-01T06:00:00Z"],
    )
    permission_check_interval_days: int | None = Field(
        None, ge=1, le=3660, description="days between permission checks", examples=[30]
    )
    storage_location: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="where the backups go",
        examples=["azure://backups/acme"],
    )
    time_zone: str | None = Field(None, description="IANA zone of the schedule", examples=["Europe/Paris"])
    plan: str | None = Field(
        None, description=f"subscription plan: one of {', '.join(DEFAULT_PLAN_QUOTAS)}; null = no quota",
        examples=["standard"],
    )  # fmt: skip
    purchased_seats: int | None = Field(
        None, ge=0, le=MAX_SEATS, description="seats bought, 0 to 10,000,000; null = no limit", examples=[250]
    )
    subscription_expires_at: Instant | None = Field(
        None,
        description="first instant without a subscription; null = never",
        examples=["2027-11-01T00:00:00Z"],
    )

    _plan = field_validator("plan")(check_plan)

    @field_validator(*_NOT_NULL, mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value

    @field_validator("time_zone", mode="after")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    def settings_changes(self) -> dict[str, Any]:
        """The given :class:`~engine.catalog.models.OrgSettings` fields, as the catalog takes them."""
        given = self.model_dump(exclude_unset=True, exclude=set(ORG_FIELDS))
        if "first_start_time" in given:
            hh, mm = given["first_start_time"].split(":")
            given["first_start_time"] = time(int(hh), int(mm))
        return given

    def org_changes(self) -> dict[str, Any]:
        """The given org-level fields (storage location, time zone, the subscription)."""
        return self.model_dump(exclude_unset=True, include=set(ORG_FIELDS))


ORG_FIELDS = ("storage_location", "time_zone", "plan", "purchased_seats", "subscription_expires_at")
"""The fields of :class:`OrgSettingsPatch` that live on the org's row, not its settings row."""


class UpdateCredentials(BaseModel):
    """``PATCH /v1/orgs/{org}``: new credentials of a connected org (only the fields given change).

    A value replaces the stored one and an empty string removes it (e.g. the security token once
    the service's IP is trusted). They are checked against Salesforce before anything is saved.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"password": "********", "security_token": "********"}]},
    )

    instance_url: str | None = Field(
        None, pattern=r"^https?://[^\s/]+(/.*)?$", max_length=500, description="the org's My Domain URL",
        examples=["https://acme.my.salesforce.com"],
    )  # fmt: skip
    login_url: str | None = Field(
        None, pattern=r"^(https?://[^\s/]+(/.*)?)?$", max_length=500, description="OAuth host",
        examples=["https://test.salesforce.com"],
    )  # fmt: skip
    username: str | None = Field(
        None, max_length=255, description="integration user", examples=["backup@acme.com"]
    )
    password: SecretStr | None = Field(
        None, max_length=1000, examples=["********"], description="its password"
    )
    security_token: SecretStr | None = Field(
        None, max_length=1000, examples=["********"], description="its security token"
    )
    client_id: str | None = Field(None, max_length=500, description="connected app consumer key")
    client_secret: SecretStr | None = Field(
        None, max_length=1000, examples=["********"], description="connected app consumer secret"
    )
    refresh_token: SecretStr | None = Field(
        None, max_length=5000, examples=["********"], description="a refresh token (refresh-token flow)"
    )
    ca_file: str | None = Field(None, max_length=1000, description="extra CA certificate file (test orgs)")

    @model_validator(mode="after")
    def _something(self) -> UpdateCredentials:
        if not self.model_fields_set:
            raise ValueError("give at least one credential field to change")
        return self

    def changes(self) -> dict[str, str | None]:
        """The given fields in clear, for :func:`engine.jobs.connect.update_credentials`."""
        out: dict[str, str | None] = {}
        for key in self.model_fields_set:
            value = getattr(self, key)
            out[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out
