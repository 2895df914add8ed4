"""``sfvault catalog upgrade|rebuild``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engine.cli.common import CONFIG_OPT
from engine.config import load_settings
from engine.console import err_console, run_cli

catalog_app = typer.Typer(help="The job catalog (SQLite or PostgreSQL).", no_args_is_help=True)


@catalog_app.command("upgrade")
def catalog_upgrade(config: Path | None = CONFIG_OPT) -> None:
    """Create the catalog, or migrate it to this version's schema."""

    def body() -> None:
        from engine.catalog.db import head_revision, migrate, redact

        settings = load_settings(config)
        migrate(settings.catalog_url)
        typer.echo(f"catalog {redact(settings.catalog_url)} is at schema {head_revision()}")

    run_cli(body)


@catalog_app.command("rebuild")
def catalog_rebuild(
    config: Path | None = CONFIG_OPT,
    org: str | None = typer.Option(None, "--org", help="only this org's snapshots"),
    skip_unreadable: bool = typer.Option(
        False, "--skip-unreadable", help="list unreadable snapshots instead of stopping at the first"
    ),
) -> None:
    """Recreate the catalog's orgs, jobs and per-object results from the repository alone."""

    def body() -> None:
        from engine.catalog.db import catalog_transaction
        from engine.catalog.rebuild import rebuild_catalog
        from engine.sink.repository import open_repository

        settings = load_settings(config)
        repo = open_repository(settings)
        try:
            with catalog_transaction(settings.catalog_url) as session:
                report = rebuild_catalog(
                    session, repo, org=org, skip_unreadable=skip_unreadable,
                    storage_location=settings.repository_url,
                )  # fmt: skip
        finally:
            repo.close()
        typer.echo(
            f"{report.snapshots} snapshots: {report.jobs_created} jobs created, "
            f"{report.jobs_updated} updated, {report.objects} object results, "
            f"orgs created: {', '.join(report.orgs_created) or 'none'}"
        )
        for name in report.orgs_created:
            err_console.print(
                f"org {name} has no credentials yet (the repository keeps none): store them with "
                f"`sfvault org update {name} --username USER --client-id ID` (secrets from --password-file, "
                "SFVAULT_PASSWORD, ... or the prompt) before its next backup"
            )
        for name, error in report.unreadable:
            err_console.print(f"[yellow]unreadable[/] {name}: {error}")
        if report.unreadable:
            sys.exit(1)

    run_cli(body)
