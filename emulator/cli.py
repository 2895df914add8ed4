"""``sfvault emulator ...``: serve an emulated org and drive it (churn, clock)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from emulator.schema_data import REAL_ORG_OBJECTS

app = typer.Typer(no_args_is_help=True)


@app.callback()
def main() -> None:
    """Salesforce org emulator."""


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    scale: Annotated[int, typer.Option(help="Records to generate, spread over the objects.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same org).")] = 1,
    profile: Annotated[str, typer.Option(help="Load profile: fast or realistic.")] = "fast",
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Keep the org in DIR (survives a restart); default in memory."),
    ] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Serve https with a self-signed certificate.")] = False,
    pubsub_port: Annotated[int, typer.Option(help="Port of the Pub/Sub API (gRPC); 0 picks a free one.")] = 0,
    session_ttl: Annotated[float, typer.Option(help="Seconds a session stays valid.")] = 7200.0,
    custom_objects: Annotated[int, typer.Option(help="Number of custom objects X__c.")] = 2,
    file_body_bytes: Annotated[int, typer.Option(help="Size of generated file bodies.")] = 4096,
    daily_api_requests: Annotated[int, typer.Option(help="DailyApiRequests allowance.")] = 100_000,
    bulk_page_rows: Annotated[
        int, typer.Option(help="Bulk results page size when maxRecords is absent.")
    ] = 100_000,
    latency_ms: Annotated[float | None, typer.Option(help="Added latency per API request.")] = None,
    stream_mbps: Annotated[float | None, typer.Option(help="MB/s cap per Bulk result stream.")] = None,
    job_mbps: Annotated[
        float | None, typer.Option(help="MB/s of server-side processing per query job.")
    ] = None,
    queue_delay_min: Annotated[
        float | None, typer.Option(help="Min seconds a job waits before it starts.")
    ] = None,
    queue_delay_max: Annotated[
        float | None, typer.Option(help="Max seconds a job waits before it starts.")
    ] = None,
    max_running_jobs: Annotated[int | None, typer.Option(help="Cap on query jobs running at once.")] = None,
    error_rate: Annotated[float | None, typer.Option(help="Share of API requests answering 503.")] = None,
    timeout_rate: Annotated[float | None, typer.Option(help="Share of API requests that stall.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="How long a stalled request stalls.")] = None,
    query_timeout_rows: Annotated[int | None, typer.Option(help="Jobs above this many rows fail.")] = None,
    profile_seed: Annotated[int | None, typer.Option(help="Seed of the profile's random faults.")] = None,
    start_time: Annotated[
        str | None, typer.Option(help="Start the org's clock at this ISO datetime (reproducible orgs).")
    ] = None,
    object_rows: Annotated[
        list[str] | None,
        typer.Option("--object-rows", help="NAME=ROWS: rows of one generated object (repeatable)."),
    ] = None,
    schema_file: Annotated[
        Path | None,
        typer.Option("--schema-file", help="A schema description (JSON) adding objects and their rows."),
    ] = None,
    wide_org: Annotated[
        int,
        typer.Option(
            "--wide-org",
            help="Add N objects of a real org's shape (schema_data.wide_org): several hundred objects "
            "in all by default; 0 serves the 27 core objects only.",
        ),
    ] = REAL_ORG_OBJECTS,
) -> None:
    """Serve an emulated org; prints credentials and one JSON line once it accepts requests."""
    from emulator.server import ServeOptions
    from emulator.server import serve as run

    overrides: dict[str, Any] = {}
    knobs: dict[str, Any] = {
        "latency_ms": latency_ms,
        "stream_bytes_per_s": None if stream_mbps is None else stream_mbps * 1_000_000,
        "job_bytes_per_s": None if job_mbps is None else job_mbps * 1_000_000,
        "queue_delay_min_s": queue_delay_min,
        "queue_delay_max_s": queue_delay_max,
        "max_running_jobs": max_running_jobs,
        "error_rate": error_rate,
        "timeout_rate": timeout_rate,
        "timeout_s": timeout_s,
        "query_timeout_rows": query_timeout_rows,
        "seed": profile_seed,
    }
    overrides = {k: v for k, v in knobs.items() if v is not None}
    run(
        ServeOptions(
            host=host,
            port=port,
            scale=scale,
            seed=seed,
            profile=profile,
            data_dir=data,
            tls=tls,
            session_ttl=session_ttl,
            custom_objects=custom_objects,
            file_body_bytes=file_body_bytes,
            daily_api_requests=daily_api_requests,
            profile_overrides=overrides,
            bulk_page_rows=bulk_page_rows,
            start_time=_parse_time(start_time),
            object_rows=_parse_object_rows(object_rows or []),
            pubsub_port=pubsub_port,
            schema_description=_description(schema_file, wide_org, seed),
        )
    )


def _description(path: Path | None, wide: int, seed: int) -> dict[str, Any] | None:
    """The schema description to load: ``--schema-file``, else ``--wide-org``'s, else none."""
    from emulator.schema_data import read_description, wide_org

    if path is not None and wide:
        raise typer.BadParameter("--schema-file and --wide-org exclude each other")
    if path is not None:
        try:
            return read_description(path)
        except (OSError, ValueError) as exc:  # unreadable, too large, not JSON, not an object
            raise typer.BadParameter(str(exc), param_hint="--schema-file") from exc
    return wide_org(wide, seed) if wide else None


def _parse_object_rows(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        name, sep, rows = item.partition("=")
        if not sep or not rows.strip().isdigit():
            raise typer.BadParameter(f"expected NAME=ROWS, got {item!r}", param_hint="--object-rows")
        out[name.strip()] = int(rows)
    return out


def _parse_time(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _admin(
    url: str, secret: str, method: str, path: str, body: dict[str, Any] | None, ca_file: str | None
) -> Any:
    import httpx

    from emulator.context import ADMIN_HEADER, ADMIN_PREFIX

    verify: Any = ca_file if ca_file else True
    with httpx.Client(base_url=url.rstrip("/"), verify=verify, timeout=600, trust_env=False) as client:
        resp = client.request(method, ADMIN_PREFIX + path, json=body, headers={ADMIN_HEADER: secret})
    if resp.status_code >= 400:
        typer.echo(f"error {resp.status_code}: {resp.text}", err=True)
        raise typer.Exit(1)
    return resp.json()


@app.command()
def churn(
    url: Annotated[str, typer.Option(help="The emulator's instance URL.")],
    admin_secret: Annotated[
        str, typer.Option(help="The admin secret it printed.", envvar="SFVAULT_EMULATOR_ADMIN_SECRET")
    ],
    percent: Annotated[float, typer.Option(help="Share of records to touch.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Churn seed.")] = 1,
    ca_file: Annotated[str | None, typer.Option(help="CA certificate for an https emulator.")] = None,
) -> None:
    """Insert, update, delete, undelete and purge records in a running emulator."""
    result = _admin(url, admin_secret, "POST", "/churn", {"percent": percent, "seed": seed}, ca_file)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


@app.command()
def clock(
    url: Annotated[str, typer.Option(help="The emulator's instance URL.")],
    admin_secret: Annotated[
        str, typer.Option(help="The admin secret it printed.", envvar="SFVAULT_EMULATOR_ADMIN_SECRET")
    ],
    set_to: Annotated[
        str | None, typer.Option("--set", help="Freeze the clock at this ISO datetime.")
    ] = None,
    advance: Annotated[float | None, typer.Option(help="Move the clock this many seconds.")] = None,
    ca_file: Annotated[str | None, typer.Option(help="CA certificate for an https emulator.")] = None,
) -> None:
    """Show, set or advance the org's clock."""
    if set_to is not None:
        result = _admin(url, admin_secret, "POST", "/clock", {"set": set_to}, ca_file)
    elif advance is not None:
        result = _admin(url, admin_secret, "POST", "/clock", {"advance": advance}, ca_file)
    else:
        result = _admin(url, admin_secret, "GET", "/clock", None, ca_file)
    typer.echo(json.dumps(result))
