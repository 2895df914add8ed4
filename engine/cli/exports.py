"""``sfvault export records|files``: AES-encrypted ZIPs of a recovery point."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import CONFIG_OPT, as_of_text, checked_settings, writable_file
from engine.console import err_console, run_cli

if TYPE_CHECKING:
    from engine.diff.export import ExportProgress
    from engine.jobs.exports import ExportRequest

export_app = typer.Typer(help="Export records or files into an AES-encrypted ZIP.", no_args_is_help=True)


def _run_export(config: Path | None, request: ExportRequest, monthly_limit_gb: float | None) -> None:
    from rich.progress import Progress

    from engine.jobs.exports import run_export

    if request.out is not None:
        writable_file(request.out, "--out")
    settings = checked_settings(config)
    limit = settings.export_monthly_limit_bytes if monthly_limit_gb is None else int(monthly_limit_gb * 10**9)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("exporting", total=None)

        def on_progress(p: ExportProgress) -> None:
            bar.update(task, total=p.total, completed=p.done, description=p.object)

        out = run_export(settings, request, monthly_limit_bytes=limit, on_progress=on_progress)
    typer.echo(f"export {out.export_id}: {out.size_bytes} bytes, job {out.job}")
    stale = {a.object: a for a in out.stale}
    if stale:
        typer.echo(f"warning: {len(stale)} object(s) of this export are not as of job {out.job} "
                   "(manifest.csv, column as_of):")  # fmt: skip
        for a in stale.values():
            typer.echo(f"  {a.object}: {as_of_text(a, out.job)}")
    for obj, n in sorted(out.rows.items()):
        note = f" (as of earlier job {stale[obj].as_of_job})" if obj in stale else ""
        typer.echo(f"  {obj}: {n} records{note}")
    if out.files:
        typer.echo(f"  {out.files} files")
    typer.echo(f"ZIP password (shown once; admins can show it again): {out.password}")


def _export_cmd(name: str, *, kind: str, fmt: str, scope: str, objects: tuple[str, ...] | None, out: Path,
                job: str | None, monthly_limit_gb: float | None, config: Path | None) -> None:  # fmt: skip
    """What ``export records`` and ``export files`` do (inside ``run_cli``): check the options, export."""
    from engine.errors import ConfigError
    from engine.jobs.exports import ExportRequest

    if scope not in ("changed", "cycle"):
        raise ConfigError(what="--scope is changed or cycle")
    if kind == "records" and fmt not in ("csv", "mysql"):
        raise ConfigError(what="--format is csv or mysql")
    req = ExportRequest(
        name, out, kind=kind, format=fmt, scope=scope, objects=objects, job=job,  # type: ignore[arg-type]
    )  # fmt: skip
    _run_export(config, req, monthly_limit_gb)


_MONTHLY_LIMIT_OPT = typer.Option(
    None, "--monthly-limit-gb", help="monthly export volume limit (default: export_monthly_limit_bytes)"
)
_SCOPE_OPT = typer.Option("cycle", "--scope", help="changed (since the previous job) or cycle")
_OUT_OPT = typer.Option(..., "--out", help="the ZIP file to write")
_JOB_OPT = typer.Option(None, "--job", help="job id (default: the newest)")


def _names(objects: str) -> tuple[str, ...]:
    """``A, B,`` → ``("A", "B")``."""
    return tuple(o.strip() for o in objects.split(",") if o.strip())


def _objects_opt(objects: str | None, all_: bool) -> tuple[str, ...] | None:
    from engine.errors import ConfigError

    if bool(objects) == all_:
        raise ConfigError(what="give exactly one of --objects A,B or --all")
    return None if all_ else _names(objects or "")


@export_app.command("records")
def export_records_cmd(
    name: str = typer.Argument(..., help="org name"),
    objects: str | None = typer.Option(None, "--objects", help="comma-separated object names"),
    all_: bool = typer.Option(False, "--all", help="every object of the backup"),
    fmt: str = typer.Option("csv", "--format", help="csv or mysql"),
    scope: str = _SCOPE_OPT,
    out: Path = _OUT_OPT,
    job: str | None = _JOB_OPT,
    monthly_limit_gb: float | None = _MONTHLY_LIMIT_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Export records as CSV or MySQL dump files."""
    run_cli(lambda: _export_cmd(name, kind="records", fmt=fmt, scope=scope,
                                objects=_objects_opt(objects, all_), out=out, job=job,
                                monthly_limit_gb=monthly_limit_gb, config=config))  # fmt: skip


@export_app.command("files")
def export_files_cmd(
    name: str = typer.Argument(..., help="org name"),
    objects: str | None = typer.Option(
        None, "--objects", help="Attachment,Document,StaticResource,MailMergeTemplate,ContentVersion"
    ),
    scope: str = _SCOPE_OPT,
    out: Path = _OUT_OPT,
    job: str | None = _JOB_OPT,
    monthly_limit_gb: float | None = _MONTHLY_LIMIT_OPT,
    config: Path | None = CONFIG_OPT,
) -> None:
    """Export file bodies with their original names, plus index.csv."""
    names = _names(objects) if objects else None
    run_cli(lambda: _export_cmd(name, kind="files", fmt="files", scope=scope, objects=names, out=out, job=job,
                                monthly_limit_gb=monthly_limit_gb, config=config))  # fmt: skip
