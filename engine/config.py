"""Settings: a TOML file plus ``SFVAULT_*`` environment variables (pydantic-settings).

No settings object is built at import time; callers build one with :func:`load_settings`
(or construct ``Settings`` directly in tests) and pass it down.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("sfvault.toml")
DEFAULT_DATA_DIR = Path("sfvault-data")


class JobSettings(BaseModel):
    """The knobs of a backup job: ``[sfvault.job]`` in the file, ``SFVAULT_JOB__<KNOB>`` in the
    environment (for example ``SFVAULT_JOB__PAGE_ROWS=20000``).

    Only what is set here overrides a default, and the defaults live in one place,
    :class:`engine.jobs.planning.JobOptions` (whose docstrings say what each knob does;
    docs/OPERATIONS.md lists them). A key that is not a knob is an error, not silently ignored.
    Durations are seconds or ISO 8601 (``"PT5M"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor_lag: timedelta | None = Field(default=None, ge=timedelta(0))
    id_sweep_every: int | None = Field(default=None, ge=0)
    max_concurrent_bulk_jobs: int | None = Field(default=None, ge=1)
    page_rows: int | None = Field(default=None, ge=1)
    page_bytes: int | None = Field(default=None, ge=1)
    result_streams: int | None = Field(default=None, ge=1)
    chunk_target_bytes: int | None = Field(default=None, ge=1)
    chunk_buffer_bytes: int | None = Field(default=None, ge=1)
    target_rows: int | None = Field(default=None, ge=1)
    min_partition_rows: int | None = Field(default=None, ge=1)
    partition_spread: int | None = Field(default=None, ge=1)
    partition_jobs: int | None = Field(default=None, ge=1)
    max_bisect_depth: int | None = Field(default=None, ge=0)
    blob_threads: int | None = Field(default=None, ge=1)
    file_bodies: bool | None = None
    poll_first: float | None = Field(default=None, gt=0)
    poll_max: float | None = Field(default=None, gt=0)
    delete_bulk_jobs: bool | None = None
    rest_max_rows: int | None = Field(default=None, ge=0)
    sweep_rest_rows: int | None = Field(default=None, ge=0)
    sweep_partition_rows: int | None = Field(default=None, ge=1)
    boundary_check_min_rows: int | None = None
    extraction_strategy: Literal["bulk2", "bulk1", "auto"] | None = None
    pk_chunking_min_rows: int | None = Field(default=None, ge=1)

    def overrides(self) -> dict[str, Any]:
        """The knobs the operator set, by name."""
        return self.model_dump(exclude_none=True)


class Settings(BaseSettings):
    """Everything sfvault can be told. Secrets are ``SecretStr`` so reprs never show them."""

    model_config = SettingsConfigDict(env_prefix="SFVAULT_", env_nested_delimiter="__", extra="ignore")

    repository_url: str = Field(
        default=str(DEFAULT_DATA_DIR / "repo"), description="file path, file:// or az://"
    )
    key_file: Path = Field(default=DEFAULT_DATA_DIR / "repo.key", description="key-encryption key (0600)")
    azure_connection_string: SecretStr | None = None
    azure_account_name: str | None = None
    catalog_url: str = Field(default=f"sqlite:///{DEFAULT_DATA_DIR / 'catalog.db'}")
    scheduler_address: str = Field(default="", description="empty = embedded LocalCluster")
    chunk_target_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    row_group_rows: int = Field(default=128 * 1024, gt=0)
    retry_max_seconds: float = Field(default=900.0, ge=0)
    retry_wait_max: float = Field(default=60.0, ge=0)
    scratch_dir: Path = Field(default=DEFAULT_DATA_DIR / "scratch")
    salesforce_api_version: str = Field(default="62.0", pattern=r"^\d+\.\d$")
    # continuous data protection (decision 0026): the Pub/Sub API endpoint (host:port, TLS)
    pubsub_endpoint: str = "api.pubsub.salesforce.com:7443"
    # a job stops starting new work when fewer API calls (or daily Bulk 2.0 query jobs) are left
    salesforce_api_reserve: int = Field(default=1000, ge=0)
    salesforce_bulk_jobs_reserve: int = Field(default=50, ge=0)
    # exports (issue 6): the exported volume allowed per org and calendar month (UTC)
    export_monthly_limit_bytes: int = Field(default=100 * 10**9, ge=0)
    export_dir: Path = Field(default=DEFAULT_DATA_DIR / "exports", description="where queued exports write")
    # queued exports and compares: the running process refreshes the row's heartbeat this often; a
    # `running` row without a heartbeat for queued_stale_after_seconds is closed failed (SFV-713)
    queued_heartbeat_seconds: float = Field(default=30.0, gt=0)
    queued_stale_after_seconds: float = Field(default=600.0, gt=0)
    # backup jobs: the owning process stamps jobs.heartbeat_at this often while the job is queued or
    # running; an active job without one for job_stale_after_seconds is closed failed (SFV-804)
    job_heartbeat_seconds: float = Field(default=30.0, gt=0)
    job_stale_after_seconds: float = Field(default=180.0, gt=0)
    # compare detail files (scratch_dir/compares/<id>) are deleted this long after the compare finished
    compare_details_keep_days: float = Field(default=30.0, gt=0)
    # control plane (issue 7): `sfvault serve`
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8400, ge=0, le=65535)
    scheduler_enabled: bool = True
    scheduler_tick_seconds: float = Field(default=30.0, gt=0)
    max_concurrent_jobs: int = Field(default=4, ge=1, description="backup/compare/export jobs run at once")
    # notifications: permission-check reports go to these admins (outbox; SMTP when smtp_host is set)
    admin_emails: list[str] = Field(default_factory=list)
    # alerts (jobs failed / partial / skipped, protection stopped): mail to admin_emails, and a
    # webhook: the alert as JSON POSTed here, signed with HMAC-SHA256 of alert_webhook_secret
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "sfvault@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    job: JobSettings = Field(default_factory=JobSettings, description="backup job knobs ([sfvault.job])")


# settings that name a local path: a relative one in the file is relative to the file's folder
_PATH_KEYS = ("key_file", "scratch_dir", "export_dir")


def _read_file(path: Path, *, explicit: bool) -> dict[str, Any]:
    """The ``[sfvault]`` table of ``path``; ``{}`` when the default ./sfvault.toml is absent.

    Raises:
        PathUnusable: a file named by ``--config`` / ``SFVAULT_CONFIG`` is missing or unreadable.
        ConfigError: the file is not TOML, or ``sfvault`` is not a table.
    """
    from engine.errors import ConfigError, PathUnusable

    if not path.exists() and not explicit:
        return {}
    if not path.exists():
        raise PathUnusable(path=str(path), what="no such config file (give an existing --config, or "
                           "create one with `sfvault init --config PATH`)")  # fmt: skip
    if not path.is_file():
        raise PathUnusable(path=str(path), what="not a regular file (give the sfvault.toml file)")
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as err:
        raise PathUnusable(path=str(path), what=err.strerror or type(err).__name__) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(what=f"{path} is not valid TOML: {err}") from err
    table = doc.get("sfvault", {})
    if not isinstance(table, dict):
        raise ConfigError(what=f"{path}: `sfvault` must be a table ([sfvault]), not {type(table).__name__}")
    return resolve_paths(table, path.resolve().parent)


def resolve_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths of the file, made absolute from ``base`` (the file's folder), so one config
    names the same catalog, repository and key from any working folder (and on any Dask worker)."""
    out = dict(values)
    for key in _PATH_KEYS:
        v = out.get(key)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            out[key] = str(base / v)
    repo = out.get("repository_url")
    if isinstance(repo, str) and repo and "://" not in repo and not Path(repo).expanduser().is_absolute():
        out["repository_url"] = str(base / repo)
    cat = out.get("catalog_url")
    if isinstance(cat, str) and cat.startswith("sqlite:///"):
        rest = cat[len("sqlite:///") :]
        if rest and not rest.startswith(("/", ":memory:", "file:")):
            out["catalog_url"] = f"sqlite:///{base / rest}"
    return out


def _validation_error(err: Any, path: Path | None) -> Exception:
    """A pydantic ``ValidationError`` as one ConfigError naming each key and where it came from."""
    from engine.errors import ConfigError

    where = f" in {path}" if path is not None else ""
    problems = []
    for e in err.errors()[:5]:
        key = ".".join(str(p) for p in e.get("loc", ())) or "sfvault"
        problems.append(f"`{key}`: {e.get('msg', 'invalid')} (got {e.get('input')!r:.60})")
    more = f" and {err.error_count() - 5} more" if err.error_count() > 5 else ""
    listed = "; ".join(problems)
    return ConfigError(what=f"invalid setting{where} (or its SFVAULT_* variable): {listed}{more}")


def load_settings(path: Path | None = None, *, missing_ok: bool = False, **overrides: Any) -> Settings:
    """Read the config file (``--config``, ``SFVAULT_CONFIG`` or ./sfvault.toml if present).

    Environment variables win over the file; explicit ``overrides`` win over both. A file named
    by ``--config`` or ``SFVAULT_CONFIG`` must exist; relative paths in the file are relative to
    its folder. ``missing_ok`` (``sfvault init``, which writes it): a missing file is no error.

    Raises:
        PathUnusable: the named config file is missing, a directory or unreadable.
        ConfigError: the file is not TOML, or a setting has the wrong type or range (named).
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    explicit = path is not None or bool(os.environ.get("SFVAULT_CONFIG"))
    path = path or Path(os.environ.get("SFVAULT_CONFIG") or DEFAULT_CONFIG_PATH)
    file_values = _read_file(path, explicit=explicit and not missing_ok)
    env_keys = {k[len("SFVAULT_") :].lower() for k in os.environ if k.startswith("SFVAULT_")}
    values: dict[str, Any] = {}
    for key, value in file_values.items():
        if key in env_keys:
            continue
        if isinstance(value, dict):  # a table: the environment wins key by key (SFVAULT_JOB__PAGE_ROWS)
            value = {k: v for k, v in value.items() if f"{key}__{k}".lower() not in env_keys}
        values[key] = value
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as err:
        raise _validation_error(err, path if file_values or explicit else None) from err
    except SettingsError as err:  # an SFVAULT_* variable that does not parse (e.g. a list that is not JSON)
        from engine.errors import ConfigError

        raise ConfigError(what=f"an SFVAULT_* environment variable does not parse: {err}") from err
