"""``sfvault cdp run`` (the change event subscriber) and ``sfvault recovery-point``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from engine.cli.common import CONFIG_OPT, JSON_OPT, checked_settings
from engine.console import err_console, print_json, run_cli

cdp_app = typer.Typer(help="Continuous data protection: change events between backups.", no_args_is_help=True)


def _objects(text: str | None) -> list[str]:
    from engine.errors import ConfigError

    names = [o.strip() for o in (text or "").split(",") if o.strip()]
    if not names:
        raise ConfigError(what="give the protected objects with --objects A,B")
    return names


@cdp_app.command("run")
def run(
    name: str = typer.Argument(..., help="org name"),
    objects: str | None = typer.Option(
        None, "--objects", help="objects, comma separated (default: the org's protected objects)"
    ),
    until_idle: float | None = typer.Option(None, "--until-idle", help="stop after SECONDS without events"),
    max_events: int | None = typer.Option(None, "--max-events", help="stop after N events per object"),
    segment_events: int = typer.Option(1000, "--segment-events", help="seal a segment every N events"),
    segment_age: float = typer.Option(
        5.0, "--segment-age", help="seal a segment when its oldest event waited SECONDS"
    ),
    heartbeat: float = typer.Option(
        60.0, "--heartbeat", help="when idle, prove the stream complete (a heartbeat segment) every SECONDS"
    ),
    endpoint: str | None = typer.Option(None, "--pubsub-endpoint", help="host:port of the Pub/Sub API"),
    catch_up: bool = typer.Option(
        True, "--catch-up/--no-catch-up", help="run a catch-up incremental backup when a replay id expired"
    ),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Subscribe to the objects' change events and seal them into the repository in segments."""

    def body() -> None:
        from engine.errors import ConfigError, ReplayIdExpired
        from engine.jobs.cdp import CdpOptions, connect_pubsub, run_subscribers
        from engine.sink.repository import open_repository

        settings = checked_settings(config)
        if objects is None:
            from engine.jobs.cdp import protected_objects

            names = protected_objects(settings, name)
        else:
            names = _objects(objects)
        if until_idle is not None and max_events is not None:
            raise ConfigError(what="give --until-idle or --max-events, not both")
        if segment_events < 1 or segment_age <= 0 or heartbeat <= 0:
            raise ConfigError(
                what="--segment-events must be at least 1, --segment-age and --heartbeat above 0"
            )
        opts = CdpOptions(segment_events=segment_events, segment_age_s=segment_age, until_idle=until_idle,
                          heartbeat_s=heartbeat,
                          max_events=max_events, retry_wait_max=settings.retry_wait_max or 0.0)  # fmt: skip
        client, rest = connect_pubsub(settings, name, endpoint=endpoint)
        repo = open_repository(settings)
        try:
            results = run_subscribers(repo, name, names, client, opts, rest=rest)
        finally:
            repo.close()
            client.close()
            rest.close()
        rows = [{"object": r.object, "events": r.events, "segments": r.segments, "reconnects": r.reconnects,
                 "gap_records_refetched": r.gap_records, "rest_calls": rest.usage.snapshot().get("calls", {}),
                 "last_replay_id": r.last_replay_id,
                 "error": getattr(r.error, "code", None) if r.error else None} for r in results]  # fmt: skip
        if as_json:
            print_json({"org": name, "objects": rows})
        else:
            for r in rows:
                err_console.print(f"{r['object']}: {r['events']} events in {r['segments']} segments, "
                                  f"{r['reconnects']} reconnects")  # fmt: skip
        expired = [res.object for res in results if isinstance(res.error, ReplayIdExpired)]
        if expired and catch_up:
            _catch_up(config, name, expired)
        for res in results:
            if res.error is not None:
                raise res.error

    run_cli(body)


@cdp_app.command("enable")
def enable(
    name: str = typer.Argument(..., help="org name"),
    objects: str = typer.Option(..., "--objects", help="objects to protect, comma separated"),
    start: str | None = typer.Option(
        None, "--start", help="when `sfvault serve` starts streaming, ISO 8601 with a zone (default: at once)"
    ),
    interval: str | None = typer.Option(
        None, "--interval", help="longest a change waits before it is sealed: 1h (default), 15m, 90s"
    ),
    endpoint: str | None = typer.Option(None, "--pubsub-endpoint", help="host:port of the Pub/Sub API"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Protect these objects (refused: file objects, SFV-621; objects without Change Data Capture
    in the org, SFV-622, which is asked; a bad --start or --interval, SFV-624). Decision 0033."""

    def body() -> None:
        from engine.jobs.cdp import set_protection
        from engine.jobs.cdp_settings import parse_interval, parse_start

        names = [o.strip() for o in objects.split(",") if o.strip()]
        start_at = parse_start(name, start) if start is not None else None
        interval_s = parse_interval(name, interval) if interval is not None else None
        done = set_protection(checked_settings(config), name, names, endpoint=endpoint, start_at=start_at,
                              interval_s=interval_s)  # fmt: skip
        typer.echo(f"continuous data protection of {name}: on for {', '.join(done)}")

    run_cli(body)


@cdp_app.command("disable")
def disable(name: str = typer.Argument(..., help="org name"), config: Path | None = CONFIG_OPT) -> None:
    """Turn continuous data protection of the org off (its segments stay)."""

    def body() -> None:
        from engine.jobs.cdp import set_protection

        set_protection(checked_settings(config), name, None)
        typer.echo(f"continuous data protection of {name}: off")

    run_cli(body)


def _catch_up(config: Path | None, org: str, objects: list[str]) -> None:
    """The catch-up incremental backup of ``objects``, through the job service (as `sfvault backup`)."""
    from cluster import dask_client
    from engine.catalog.db import make_engine, migrate, session_factory
    from engine.clock import SystemClock
    from engine.jobs.planning import BackupRequest
    from engine.jobs.service import JobService

    settings = checked_settings(config)
    engine = make_engine(settings.catalog_url)
    try:
        migrate(engine)
        service = JobService(settings, session_factory(engine), clock=SystemClock())
        job = service.admit(org, BackupRequest(org=org, objects=tuple(objects)), trigger="manual")
        err_console.print(f"replay id expired: catch-up job {job.job_id} queued ({job.kind}) for "
                          f"{', '.join(objects)}")  # fmt: skip
        with service.heartbeat(job.job_id), dask_client(job.settings, quiet=True) as client:
            result = service.run(job, client)
        err_console.print(f"catch-up job {result.job_id} {result.state}")
    finally:
        engine.dispose()


def recovery_point(
    name: str = typer.Argument(..., help="org name"),
    at: str = typer.Option(..., "--at", help="the instant, ISO 8601 with a time zone"),
    objects: str | None = typer.Option(None, "--objects", help="objects, comma separated"),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Materialise the recovery point at --at (a snapshot plus change events) as a job of its own."""

    def body() -> None:
        from engine.errors import ConfigError
        from engine.jobs.recovery_point import make_recovery_point

        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise ConfigError(what=f"--at {at!r} is not an ISO 8601 instant") from None
        if when.tzinfo is None:
            raise ConfigError(what="--at needs a time zone (e.g. 2026-12-06T10:00:00+00:00)")
        settings = checked_settings(config)
        res = make_recovery_point(settings, name, when, _objects(objects))
        if as_json:
            print_json({"org": name, "job": res.job_id, "at": res.at.isoformat(), "snapshot": res.snapshot,
                        "objects": res.objects})  # fmt: skip
        else:
            typer.echo(f"recovery point job {res.job_id} at {res.at.isoformat()}")
            for obj, f in res.objects.items():
                typer.echo(
                    f"  {obj}: {f['rows']} records (job {f['base_job']} + {f['events']} change events)"
                )

    run_cli(body)
