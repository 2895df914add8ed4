"""``sfvault repair``: set aside damaged snapshots and objects, rebuild the index (dry run by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import CONFIG_OPT, open_repository_from
from engine.console import run_cli


def repair(
    apply: bool = typer.Option(False, "--apply", help="act (default: only list what repair would do)"),
    read_data: bool = typer.Option(
        False, "--read-data", help="also download, decrypt and re-hash every referenced object"
    ),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Set aside damaged or unreadable snapshots (moved to quarantine/, never deleted) and rebuild
    the index, so the org can back up again; the next job redoes the affected objects in full."""

    def body() -> None:
        from engine.sink.repair import repair as run_repair

        repository = open_repository_from(config)
        try:
            report = run_repair(repository, apply=apply, read_data=read_data)
        finally:
            repository.close()
        prefix = "" if apply else "would "
        for a in report.actions:
            code = f" {a.code}" if a.code else ""
            typer.echo(f"{prefix}{a.what}{code} {a.name}: {a.detail}")
        if not report.actions:
            typer.echo("nothing to repair")
        elif not apply:
            typer.echo(f"{len(report.actions)} action(s); run `sfvault repair --apply` to carry them out")
        else:
            typer.echo(f"{len(report.actions)} action(s) done; run `sfvault verify` to check")

    run_cli(body)
