"""``sfvault settings show|set ORG``: an org's backup settings and subscription from the CLI.

The same fields as ``GET`` / ``PATCH /v1/orgs/{org}/settings``, checked by the same pydantic
model (:class:`api.schemas_orgs.OrgSettingsPatch`) and written by the same function, so the CLI
and the API cannot disagree on a range. A refused value is SFV-608 naming the field; nothing is
written unless every given field is valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from engine.cli.common import CONFIG_OPT
from engine.config import load_settings
from engine.console import run_cli
from engine.errors import InvalidPolicySetting

settings_app = typer.Typer(help="An org's backup settings and subscription.", no_args_is_help=True)

NULLS = ("", "none", "null")
"""Values of ``--plan``, ``--purchased-seats``, ``--subscription-expires-at`` that clear them."""


def _list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _nullable(value: str | None) -> Any:
    """A nullable option: not given (``...``), cleared (None) or the text."""
    if value is None:
        return ...
    return None if value.strip().lower() in NULLS else value


def patch_of(given: dict[str, Any]) -> Any:
    """The checked :class:`~api.schemas_orgs.OrgSettingsPatch` of the given options.

    Raises:
        InvalidPolicySetting: a value out of range or malformed (the first one, by field name).
    """
    from api.schemas_orgs import OrgSettingsPatch

    body = {k: v for k, v in given.items() if v is not ...}
    if not body:
        raise InvalidPolicySetting(field="(none)", what="give at least one setting to change; see --help")
    try:
        return OrgSettingsPatch.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidPolicySetting(field=field, what=first["msg"]) from None


def _print_settings(view: Any) -> None:
    for key, value in view.model_dump(mode="json").items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key}: {'-' if shown in (None, '') else shown}")


@settings_app.command("show")
def settings_show(
    org: str = typer.Argument(..., help="the connected org"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (the API's shape) for scripts"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Every setting of the org, its subscription, and today's schedule in its time zone."""

    def body() -> None:
        from api.routes.orgs import settings_view
        from engine.catalog import orgs as corgs
        from engine.catalog.db import catalog_transaction
        from engine.clock import SystemClock

        settings = load_settings(config)
        with catalog_transaction(settings.catalog_url) as s:
            view = settings_view(corgs.get_org_by_name(s, org), SystemClock().now())
        if as_json:
            typer.echo(json.dumps(view.model_dump(mode="json"), indent=2))
        else:
            _print_settings(view)

    run_cli(body)


@settings_app.command("set")
def settings_set(
    org: str = typer.Argument(..., help="the connected org"),
    backup_enabled: bool | None = typer.Option(
        None, "--backup-enabled/--backup-disabled", help="data backup"
    ),
    include_feed: bool | None = typer.Option(None, "--include-feed/--no-include-feed", help="*Feed objects"),
    include_share: bool | None = typer.Option(
        None, "--include-share/--no-include-share", help="*Share objects"
    ),
    event_logs: str | None = typer.Option(None, "--event-logs", help="off, daily or hourly"),
    excluded_objects: str | None = typer.Option(
        None, "--excluded-objects", help="comma-separated object API names ('' = none)"
    ),
    excluded_metadata_types: str | None = typer.Option(
        None, "--excluded-metadata-types", help="comma-separated metadata types ('' = none)"
    ),
    jobs_per_day: int | None = typer.Option(None, "--jobs-per-day", help="scheduled jobs per day, 1 to 24"),
    first_start_time: str | None = typer.Option(
        None, "--first-start-time", help="local HH:MM of the first job"
    ),
    permission_check_enabled: bool | None = typer.Option(
        None, "--permission-check/--no-permission-check", help="scheduled permission checks"
    ),
    permission_check_start: str | None = typer.Option(
        None, "--permission-check-start", help="ISO-8601 instant with offset of the first check"
    ),
    permission_check_interval_days: int | None = typer.Option(
        None, "--permission-check-interval-days", help="days between checks, 1 to 3660"
    ),
    storage_location: str | None = typer.Option(None, "--storage-location", help="where the backups go"),
    time_zone: str | None = typer.Option(None, "--time-zone", help="IANA zone of the schedule"),
    plan: str | None = typer.Option(None, "--plan", help="subscription plan ('none' = no quota)"),
    purchased_seats: str | None = typer.Option(
        None, "--purchased-seats", help="seats bought, 0 to 10,000,000 ('none' = no limit)"
    ),
    subscription_expires_at: str | None = typer.Option(
        None, "--subscription-expires-at", help="ISO-8601 instant with offset ('none' = never)"
    ),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Change settings (only those given; all are checked before any is written).

    Plan, seats and expiry are the subscription an admin renews: e.g.
    `sfvault settings set acme --subscription-expires-at 2028-01-01T00:00:00Z`.
    """

    def body() -> None:
        from api.routes.orgs import apply_settings, settings_view
        from engine.catalog import orgs as corgs
        from engine.catalog.db import catalog_transaction
        from engine.clock import SystemClock

        def opt(value: Any) -> Any:
            return ... if value is None else value

        patch = patch_of(
            {
                "backup_enabled": opt(backup_enabled), "include_feed": opt(include_feed),
                "include_share": opt(include_share), "event_logs": opt(event_logs),
                "excluded_objects": opt(_list(excluded_objects)),
                "excluded_metadata_types": opt(_list(excluded_metadata_types)),
                "jobs_per_day": opt(jobs_per_day), "first_start_time": opt(first_start_time),
                "permission_check_enabled": opt(permission_check_enabled),
                "permission_check_start": opt(permission_check_start),
                "permission_check_interval_days": opt(permission_check_interval_days),
                "storage_location": opt(storage_location), "time_zone": opt(time_zone),
                "plan": _nullable(plan), "purchased_seats": _nullable(purchased_seats),
                "subscription_expires_at": _nullable(subscription_expires_at),
            }
        )  # fmt: skip
        settings = load_settings(config)
        clock = SystemClock()
        with catalog_transaction(settings.catalog_url) as s:
            row = corgs.get_org_by_name(s, org)
            apply_settings(s, row, patch, clock)
            view = settings_view(row, clock.now())
        _print_settings(view)

    run_cli(body)
