"""``sfvault backup``, ``jobs`` and ``job show|cancel``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from engine.cli.common import CONFIG_OPT, JSON_OPT, as_of_cell, as_of_text, checked_settings
from engine.config import load_settings
from engine.console import err_console, out_console, print_json, run_cli
from engine.model import ApiCalls, api_calls_of, api_calls_total

job_app = typer.Typer(help="One backup job.", no_args_is_help=True)


def backup(
    name: str = typer.Argument(..., help="org name (see `sfvault org add`)"),
    full: bool = typer.Option(False, "--full", help="start a new cycle with a full backup"),
    objects: str | None = typer.Option(
        None, "--objects", help="only these objects, comma separated (needs a full backup first)"
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786 (default: embedded cluster)"
    ),
    workers: int | None = typer.Option(None, "--workers", help="embedded cluster: worker processes"),
    override_policy: bool = typer.Option(
        False,
        "--override-policy",
        help="run although the policy refuses (subscription, seats, quota, no storage location); "
        "recorded on the job. Never passes a job already running or objects before the first full.",
    ),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Back up an org now: full (first job of a cycle, or --full) or incremental; exit 3 when partial.

    Goes through the same job service as the API and the scheduler: the policy first (exit 3 with
    its SFV-6xx code when it refuses), then the queued job, then the run."""

    def body() -> None:
        from cluster import dask_client
        from engine.catalog.db import make_engine, migrate, session_factory
        from engine.clock import SystemClock
        from engine.jobs.planning import BackupRequest
        from engine.jobs.service import JobService

        settings = checked_settings(config)
        wanted = tuple(o.strip() for o in objects.split(",") if o.strip()) if objects is not None else None
        request = BackupRequest(org=name, full=full, objects=wanted)
        engine = make_engine(settings.catalog_url)
        try:
            migrate(engine)
            service = JobService(settings, session_factory(engine), clock=SystemClock())
            job = service.admit(name, request, trigger="manual", override=override_policy)
            err_console.print(f"job {job.job_id} queued ({job.kind})")
            with service.heartbeat(job.job_id):
                try:
                    client_cm = dask_client(job.settings, scheduler=scheduler, n_workers=workers, quiet=True)
                    with client_cm as client, _BackupBars() as bars:
                        result = service.run(job, client, on_progress=bars.update)
                except BaseException as err:
                    service.close_queued(job.job_id, err)
                    raise
        finally:
            engine.dispose()
        _print_result(result)
        if result.state == "partial":
            sys.exit(3)
        if result.state == "failed":
            sys.exit(1)

    run_cli(body)


class _BackupBars:
    """Rich progress bars: one per object (partitions done) and one overall."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[records]:>12} rec"), TimeElapsedColumn(),
            console=err_console, transient=False,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}
        self.overall: Any = None

    def __enter__(self) -> _BackupBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: object) -> None:
        from engine.jobs.runner import Progress as JobProgress

        assert isinstance(event, JobProgress)
        reports = event.objects
        if self.overall is None:
            self.overall = self.progress.add_task(f"job {event.job_id[:24]}", total=len(reports), records="")
        for name, rep in reports.items():
            if rep.partitions == 0 and rep.state == "pending":
                continue
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=max(rep.partitions, 1), records="")
            label = name if rep.state != "failed" else f"[red]{name} ({rep.error_code})"
            self.progress.update(
                self.tasks[name], total=max(rep.partitions, 1), description=label,
                completed=rep.partitions_done if rep.state != "succeeded" else max(rep.partitions, 1),
                records=f"{rep.records:,}",
            )  # fmt: skip
        done = sum(1 for r in reports.values() if r.state in ("succeeded", "failed"))
        total_records = sum(r.records for r in reports.values())
        self.progress.update(self.overall, completed=done, total=len(reports), records=f"{total_records:,}")


def _print_result(result: object) -> None:
    from rich.table import Table

    from engine.jobs.runner import BackupResult

    assert isinstance(result, BackupResult)
    table = Table(title=f"{result.kind} backup {result.job_id}: {result.state}")
    for col in ("object", "mode", "state", "records", "deleted", "bytes", "seconds", "API calls", "error"):
        numeric = col in ("records", "deleted", "bytes", "seconds", "API calls")
        table.add_column(col, justify="right" if numeric else "left")
    for name, o in sorted(result.objects.items()):
        calls = api_calls_of(o.calls).total
        table.add_row(name, o.mode, o.state, f"{o.records:,}", f"{o.deleted:,}", f"{o.bytes:,}",
                      f"{o.duration_s:.1f}", str(calls), o.error_code or "")  # fmt: skip
    out_console().print(table)
    if result.state == "partial":
        failed = sorted(n for n, o in result.objects.items() if o.state == "failed")
        typer.echo(
            f"partial: {len(failed)} object(s) failed ({', '.join(failed)}); this job's recovery point and "
            f"exports hold them as of an earlier job, or not at all: sfvault job show {result.job_id}"
        )
    rate = result.records / result.duration_s if result.duration_s else 0.0
    typer.echo(
        f"{result.records:,} records, {result.bytes:,} bytes in {result.duration_s:.1f}s "
        f"({rate:,.0f} records/s), {calls_text(result.calls_by_api)}; snapshot {result.snapshot or 'none'}"
    )


def calls_text(calls: ApiCalls) -> str:
    """``N API calls (REST a, Bulk 2.0 b, Bulk 1.0 c[; d Bulk 1.0 batches])``: the one meaning of
    "API calls" (decision 0027), the same figure as the job report, /usage and the Data view."""
    batches = f"; {calls.bulk1_batches:,} Bulk 1.0 batches" if calls.bulk1_batches else ""
    return (f"{calls.total:,} API calls (REST {calls.rest:,}, Bulk 2.0 {calls.bulk2:,}, "
            f"Bulk 1.0 {calls.bulk1:,}{batches})")  # fmt: skip


def jobs_list(
    name: str = typer.Argument(..., help="org name"),
    limit: int = typer.Option(20, "--limit", min=1, help="newest N jobs"),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """The org's jobs, newest first."""

    def body() -> None:
        from rich.table import Table

        from engine.catalog import jobs as cjobs
        from engine.catalog import orgs as corgs
        from engine.catalog.db import catalog_transaction

        settings = load_settings(config)
        with catalog_transaction(settings.catalog_url) as s:
            org = corgs.get_org_by_name(s, name)
            rows = cjobs.jobs_of_org(s, org.id, limit=limit)
            if as_json:
                print_json([_job_json(j) for j in rows])
                return
            table = Table(title=f"jobs of {name}")
            for col in ("job", "kind", "state", "started", "finished", "records", "bytes", "error"):
                table.add_column(col)
            for j in rows:
                table.add_row(
                    j.id, j.kind, j.state if j.pruned_at is None else f"{j.state} (pruned)",
                    f"{j.started_at:%Y-%m-%d %H:%M:%S}" if j.started_at else "",
                    f"{j.finished_at:%Y-%m-%d %H:%M:%S}" if j.finished_at else "", f"{j.records:,}",
                    f"{j.bytes:,}", j.error_code or "",
                )  # fmt: skip
        out_console().print(table)

    run_cli(body)


@job_app.command("show")
def job_show(
    job_id: str = typer.Argument(...), as_json: bool = JSON_OPT, config: Path | None = CONFIG_OPT
) -> None:
    """One job: its state and, per object, records, bytes, time, API calls and error code."""

    def body() -> None:
        from rich.table import Table

        from engine.catalog import jobs as cjobs
        from engine.catalog.db import catalog_transaction
        from engine.catalog.usage import usage_of_job

        settings = load_settings(config)
        with catalog_transaction(settings.catalog_url) as s:
            j = cjobs.get_job(s, job_id, with_objects=True)
            as_of = cjobs.objects_as_of(s, j)
            usage = usage_of_job(s, j.id)
            record = _job_manifest(settings, s, j)
            if as_json:
                paths = _paths_json(record)
                print_json(_job_json(j) | {"usage": _usage_json(usage), "objects": [
                    _object_json(o) | {"as_of": as_of_cell(as_of.get(o.object_name)) or "this job"}
                    | paths.get(o.object_name, {})
                    for o in sorted(j.objects, key=lambda o: o.object_name)
                ]} | _skipped_json(record)
                  | ({"recovery_point": j.recovery_point} if j.recovery_point else {}))  # fmt: skip
                return
            typer.echo(
                f"job {j.id}: {j.kind} {j.state}; cycle {j.cycle_id}; started {j.started_at}; "
                f"finished {j.finished_at}; {j.records:,} records, {j.bytes:,} bytes; "
                f"snapshot {j.snapshot_ref or 'none'}"
            )
            typer.echo(calls_text(ApiCalls(usage.rest_calls, usage.bulk2_calls, usage.bulk1_calls,
                                           usage.bulk1_batches)))  # fmt: skip
            if j.error_code:
                typer.echo(f"error {j.error_code}: {j.error_message}")
            stale = [a for a in as_of.values() if not a.current]
            if stale:
                typer.echo(f"{j.state}: {len(stale)} object(s) not backed up by this job; its recovery "
                           "point and exports hold them as of an earlier job, or not at all:")  # fmt: skip
                for a in stale:
                    typer.echo(f"  {a.object}: {as_of_text(a, j.id)}")
            table = Table()
            for col in ("object", "state", "records", "bytes", "chunks", "seconds", "API calls", "REST",
                        "Bulk 2.0", "Bulk 1.0", "Bulk jobs", "Bulk pages", "Bulk 1.0 batches", "files n/a",
                        "error / warning", "data as of"):  # fmt: skip
                table.add_column(col)
            for o in sorted(j.objects, key=lambda o: o.object_name):
                table.add_row(o.object_name, o.state, f"{o.records:,}", f"{o.bytes:,}", str(o.chunks),
                              f"{o.duration_s:.1f}", str(api_calls_total(o)),
                              str(o.rest_calls), str(o.bulk2_calls), str(o.bulk1_calls), str(o.bulk2_jobs),
                              str(o.bulk2_pages), str(o.bulk1_batches), str(o.files_unavailable or ""),
                              o.error_code or o.warning_code or "",
                              as_of_cell(as_of.get(o.object_name)))  # fmt: skip
            for o in sorted(j.objects, key=lambda o: o.object_name):
                if o.warning_code:
                    typer.echo(f"warning {o.warning_code} on {o.object_name}: {o.warning_message}")
        out_console().print(table)
        for line in _manifest_lines(record):
            typer.echo(line)
        for line in recovery_point_lines(j.recovery_point):
            typer.echo(line)

    run_cli(body)


def _job_manifest(settings: Any, s: Any, j: Any) -> Any:
    """The job's manifest (how each object was read, what scope left out), or None when the job
    committed none, was pruned, or the repository cannot be read from here."""
    from engine.catalog.models import Org
    from engine.errors import SfvaultError
    from engine.sink.repository import open_repository

    org = s.get(Org, j.org_id)
    if j.snapshot_ref is None or getattr(j, "pruned_at", None) is not None or org is None:
        return None
    try:
        repo = open_repository(settings)
        try:
            return repo.load_manifest(org.name, j.id)
        finally:
            repo.close()
    except (SfvaultError, OSError):
        return None


def _paths_json(manifest: Any) -> dict[str, dict[str, Any]]:
    if manifest is None:
        return {}
    return {
        name: {"extraction": e.extraction.to_dict()}
        for name, e in manifest.objects.items()
        if e.extraction is not None
    }


def _skipped_json(manifest: Any) -> dict[str, Any]:
    if manifest is None or manifest.job is None:
        return {}
    return {"not_backed_up": [o.to_dict() for o in manifest.job.not_backed_up]}


def _manifest_lines(manifest: Any) -> list[str]:
    """``read through`` lines (the API of each object and why, decision 0028) and the objects of
    the org that scope left out, with their reasons."""
    if manifest is None:
        return []
    lines = []
    for name, e in sorted(manifest.objects.items()):
        if e.extraction is not None:
            x = e.extraction
            rows = "" if x.rows is None else f", {x.rows:,} rows"
            lines.append(f"read through {x.path} ({x.reason}{rows}): {name}")
    skipped = manifest.job.not_backed_up if manifest.job is not None else ()
    if skipped:
        lines.append(f"{len(skipped)} object(s) of the org not backed up:")
        lines.extend(f"  {o.name}: {o.reason} ({o.message})" for o in skipped)
    return lines


def _job_json(j: Any) -> dict[str, Any]:
    keys = ("id", "kind", "state", "cycle_id", "trigger", "started_at", "finished_at", "records", "bytes",
            "snapshot_ref", "error_code", "error_message")  # fmt: skip
    return {k: getattr(j, k, None) for k in keys}


def _object_json(o: Any) -> dict[str, Any]:
    keys = ("object_name", "state", "records", "bytes", "chunks", "duration_s", "rest_calls", "bulk2_calls",
            "bulk1_calls", "bulk2_jobs", "bulk2_pages", "bulk1_batches", "files_unavailable", "error_code",
            "error_message", "warning_code", "warning_message")  # fmt: skip
    calls = api_calls_total(o)
    return {k: getattr(o, k, None) for k in keys} | {"api_calls": calls}


def _usage_json(u: Any) -> dict[str, int]:
    """The job's row sums of the usage ledger, with ``api_calls`` (their allowance total)."""
    keys = ("rest_calls", "bulk2_calls", "bulk1_calls", "bulk2_jobs", "bulk2_pages", "bulk1_batches")
    return {"api_calls": int(u.api_calls)} | {k: int(getattr(u, k)) for k in keys}


@job_app.command("cancel")
def job_cancel(job_id: str = typer.Argument(...), config: Path | None = CONFIG_OPT) -> None:
    """Ask a running job to stop (a queued one is cancelled at once); nothing it wrote is committed."""

    def body() -> None:
        from engine.catalog.db import make_engine, migrate, session_factory
        from engine.clock import SystemClock
        from engine.jobs.service import JobService

        settings = load_settings(config)
        engine = make_engine(settings.catalog_url)
        try:
            migrate(engine)
            j = JobService(settings, session_factory(engine), clock=SystemClock()).cancel(job_id)
        finally:
            engine.dispose()
        typer.echo(f"job {j.id}: {'cancelled' if j.state == 'cancelled' else 'cancel requested'}")

    run_cli(body)


def recovery_point_lines(rp: dict[str, Any] | None) -> list[str]:
    """What a ``recovery_point`` job holds, one line per object (decision 0033)."""
    if not rp:
        return []
    lines = [f"recovery point at {rp.get('at')}:"]
    for obj, f in sorted((rp.get("objects") or {}).items()):
        window = ""
        if f.get("events_applied"):
            window = (f"; replay ids {f['first_replay_id']}..{f['last_replay_id']}, commits "
                      f"{f['first_commit']} .. {f['last_commit']}")  # fmt: skip
        lines.append(f"  {obj}: job {f.get('base_job')} + {f.get('events_applied', f.get('events'))} change "
                     f"events from {f.get('from')}{window}")  # fmt: skip
    return lines
