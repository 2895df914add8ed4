"""``sfvault data`` and ``compare``: recovery points read with DuckDB."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.cli.common import (
    CONFIG_OPT,
    JSON_OPT,
    as_of_text,
    checked_settings,
    open_repository_from,
    writable_file,
)
from engine.console import err_console, out_console, print_json, run_cli

if TYPE_CHECKING:
    from engine.diff.recovery import RecoveryPoints
    from engine.sink.repository import Repository


def _recovery_points(config: Path | None, org: str) -> tuple[Repository, RecoveryPoints]:
    from engine.diff.recovery import RecoveryPoints

    settings = checked_settings(config)
    repo = open_repository_from(config)
    try:
        rp = RecoveryPoints(repo, org, scratch_root=settings.scratch_dir)
    except BaseException:
        repo.close()
        raise
    return repo, rp


def data(
    name: str = typer.Argument(..., help="org name"),
    job: str | None = typer.Option(None, "--job", help="job id (default: the newest)"),
    types: list[str] = typer.Option([], "--type", help="standard, custom, feed, share, files (repeatable)"),
    min_added: int | None = typer.Option(None, "--min-added"),
    max_added: int | None = typer.Option(None, "--max-added"),
    min_changed: int | None = typer.Option(None, "--min-changed"),
    max_changed: int | None = typer.Option(None, "--max-changed"),
    min_removed: int | None = typer.Option(None, "--min-removed"),
    max_removed: int | None = typer.Option(None, "--max-removed"),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Per object at a job: records, backup size, added/changed/removed since the previous job, API use."""
    from rich.table import Table

    from engine.cli.jobs import calls_text
    from engine.diff.compare import OBJECT_TYPES, StatsFilter, job_calls, job_stats
    from engine.errors import ConfigError

    def body() -> None:
        bad = [t for t in types if t not in OBJECT_TYPES]
        if bad:
            raise ConfigError(what=f"unknown --type {bad}; use {', '.join(OBJECT_TYPES)}")
        f = StatsFilter(
            frozenset(types), min_added, max_added, min_changed, max_changed, min_removed, max_removed
        )
        repo, rp = _recovery_points(config, name)
        try:
            stats = job_stats(rp, job, filter=f)
            target = rp.snapshots.job(job)
            calls = job_calls(rp, target.job_id)
            stale = [a for a in rp.snapshots.as_of(target.job_id) if not a.current]
            events = _change_events(config, repo, name, target.job.started_at)
        finally:
            rp.close()
            repo.close()
        if as_json:
            print_json({"org": name, "job": target.job_id, "kind": target.kind, "cycle_id": target.cycle_id,
                        "usage": asdict(calls) | {"api_calls": calls.total},
                        "objects": [asdict(s) for s in stats],
                        "change_events": [e.to_dict() for e in events]})  # fmt: skip
            return
        t = Table(title=f"{name} at job {target.job_id} ({target.kind}, cycle {target.cycle_id})")
        cols = ("object", "type", "records", "backup bytes", "added", "changed", "removed", "API calls",
                "REST", "Bulk 2.0", "Bulk 1.0", "Bulk jobs", "Bulk 1.0 batches", "as of")  # fmt: skip
        for col in cols:
            t.add_column(col, justify="left" if col in ("object", "type", "as of") else "right")
        for s in stats:
            t.add_row(s.object, s.type, str(s.records), str(s.backup_bytes), str(s.added), str(s.changed),
                      str(s.removed), str(s.api_calls), str(s.rest_calls), str(s.bulk2_calls),
                      str(s.bulk1_calls), str(s.bulk_jobs), str(s.bulk1_batches),
                      "this job" if s.as_of == "this_job" else f"job {s.as_of_job}")  # fmt: skip
        out_console().print(t)
        typer.echo(f"job {target.job_id}: {calls_text(calls)}")
        if stale:
            partial = "partial job: " if any(a.error_code for a in stale) else ""
            typer.echo(f"{partial}{len(stale)} object(s) not backed up by job {target.job_id}; "
                       "their records are as of an earlier job, or they are absent:")  # fmt: skip
            for a in stale:
                typer.echo(f"  {a.object}: {as_of_text(a, target.job_id)}")
        for e in events:
            covered = e.covered_to.isoformat() if e.covered_to else "-"
            typer.echo(f"change events {e.object}: {e.events} in {e.segments} segments ({e.events_after_job} "
                       f"after the job's start, {e.gap_events} gap), complete up to {covered}")  # fmt: skip

    run_cli(body)


def _change_events(config: Path | None, repo: Any, org: str, started: Any) -> list[Any]:
    """The data view's change events per protected object (decision 0033)."""
    from engine.errors import SfvaultError
    from engine.jobs.cdp import protected_objects
    from engine.jobs.cdp_stats import change_event_counts

    settings = checked_settings(config)
    url = settings.catalog_url
    protected: list[str] = []
    if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists():
        try:  # a read command does not create a catalog; without one, the objects with segments
            protected = protected_objects(settings, org)
        except SfvaultError:  # protection off, or an org the catalog does not know
            protected = []
    return change_event_counts(repo, org, protected, job_started=started)


def compare(
    name: str = typer.Argument(..., help="org name"),
    job: str | None = typer.Option(None, "--job", help="the newer job (default: the newest)"),
    against: str | None = typer.Option(None, "--against", help="the older job (default: the previous one)"),
    details: Path | None = typer.Option(None, "--details", help="write per-object Id and field files here"),
    objects: str | None = typer.Option(None, "--objects", help="comma-separated objects (default: all)"),
    with_modstamp: bool = typer.Option(
        False, "--with-systemmodstamp", help="count SystemModstamp-only changes"
    ),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Compare two jobs of a cycle: added, removed and changed records per object."""
    from rich.table import Table

    from engine.diff.compare import DEFAULT_IGNORED
    from engine.diff.compare import compare as do_compare

    def body() -> None:
        if details is not None:
            writable_file(details, "--details", folder=True)
        repo, rp = _recovery_points(config, name)
        try:
            names = [o.strip() for o in objects.split(",") if o.strip()] if objects else None
            c = do_compare(rp, job, against, objects=names,
                           ignore_fields=() if with_modstamp else DEFAULT_IGNORED)  # fmt: skip
            if details is not None:
                files = c.write_details(details)
                err_console.print(f"wrote {len(files)} detail files to {details}")
            if as_json:
                print_json({"org": name, "job": c.job, "against": c.against, "objects": [
                    {"object": o, "added": d.added, "changed": d.changed, "removed": d.removed,
                     "records_now": d.records_new, "records_before": d.records_old,
                     "columns_added": d.columns_added, "columns_removed": d.columns_removed}
                    for o, d in sorted(c.objects.items())]})  # fmt: skip
                return
            t = Table(title=f"{name}: job {c.job} against {c.against}")
            for col in ("object", "added", "changed", "removed", "records now", "records before"):
                t.add_column(col, justify="left" if col == "object" else "right")
            for o, d in sorted(c.objects.items()):
                counts = (d.added, d.changed, d.removed, d.records_new, d.records_old)
                t.add_row(o, *(str(v) for v in counts))
            out_console().print(t)
        finally:
            rp.close()
            repo.close()

    run_cli(body)
