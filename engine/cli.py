"""The ``sfvault`` command line: a thin Typer front end over the engine.

This is the only engine module that knows about the terminal. Every command maps
``SfvaultError`` to its exit code through :func:`run_cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from emulator.cli import app as emulator_app
from engine.config import load_settings
from engine.errors import SfvaultError

app = typer.Typer(name="sfvault", help="Backup engine for Salesforce.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator", help="Run and drive the Salesforce org emulator.")

err_console = Console(stderr=True)
T = TypeVar("T")


def run_cli(fn: Callable[[], T]) -> T:
    """Run a command body; print an ``SfvaultError`` as one line and exit with its code."""
    try:
        return fn()
    except SfvaultError as err:
        err_console.print(f"[bold red]error[/] {err}")
        sys.exit(err.exit_code)


@app.command()
def version() -> None:
    """Print the sfvault version."""
    from engine import __version__

    typer.echo(__version__)


# --- sfvault init / verify / prune (repository engineer's lines) ---------------------------

if TYPE_CHECKING:
    from engine.sink.repository import Repository

_REPO_CONFIG_OPT = typer.Option(
    None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)"
)


def _config_path(config: Path | None) -> Path:
    import os

    from engine.config import DEFAULT_CONFIG_PATH

    return config or Path(os.environ.get("SFVAULT_CONFIG", DEFAULT_CONFIG_PATH))


def _open_repository(config: Path | None) -> Repository:
    from engine.sink.repository import open_repository

    return open_repository(load_settings(config))


@app.command()
def init(
    repo: str | None = typer.Option(
        None, "--repo", help="repository URL: a path, file://..., or az://container/prefix"
    ),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="key-encryption key file (created 0600 if missing)"
    ),
    key_vault_key: str | None = typer.Option(
        None, "--key-vault-key", help="use this Azure Key Vault key (https://<vault>/keys/<name>/<version>)"
    ),
    config: Path | None = _REPO_CONFIG_OPT,
) -> None:
    """Create an encrypted repository (refuses an existing one) and write sfvault.toml."""

    def body() -> None:
        import json

        from engine.errors import RepositoryExists, RepositoryNotInitialized
        from engine.sink.backends import open_backend, redact_url
        from engine.sink.keys import AzureKeyVaultKek, KekProvider, LocalKeyFile
        from engine.sink.repository import Repository, read_config

        overrides: dict[str, object] = {}
        if repo:
            overrides["repository_url"] = repo
        if key_file:
            overrides["key_file"] = key_file
        settings = load_settings(config, **overrides)
        backend = open_backend(settings.repository_url, settings)
        try:
            read_config(backend)
        except RepositoryNotInitialized:
            pass
        else:
            raise RepositoryExists(url=redact_url(settings.repository_url))
        kek: KekProvider
        if key_vault_key:
            kek = AzureKeyVaultKek(key_vault_key)
        else:
            kek = LocalKeyFile.load_or_create(settings.key_file)
        created = Repository.init(backend, kek, settings=settings)
        typer.echo(f"created repository {created.repo_id} at {redact_url(settings.repository_url)}")
        if not key_vault_key:
            typer.echo(f"key file: {settings.key_file} (keep a copy elsewhere: nothing reads without it)")
        path = _config_path(config)
        if path.exists():
            typer.echo(f"{path} exists; left unchanged")
            return
        lines = ["[sfvault]"]
        for key in ("repository_url", "key_file", "catalog_url", "scheduler_address"):
            lines.append(f"{key} = {json.dumps(str(getattr(settings, key)))}")
        if settings.azure_account_name:
            lines.append(f"azure_account_name = {json.dumps(settings.azure_account_name)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        typer.echo(f"wrote {path}")

    run_cli(body)


@app.command()
def verify(
    read_data: bool = typer.Option(
        False, "--read-data", help="download, decrypt and re-hash every referenced object"
    ),
    no_key: bool = typer.Option(False, "--no-key", help="keyless pass: object headers and sizes only"),
    config: Path | None = _REPO_CONFIG_OPT,
) -> None:
    """Check the repository; lists each bad object with its error code; non-zero exit on errors."""

    def body() -> None:
        from engine.errors import VerifyFailed
        from engine.sink.backends import open_backend, redact_url
        from engine.sink.verify import verify as run_verify
        from engine.sink.verify import verify_keyless

        if no_key:
            settings = load_settings(config)
            backend = open_backend(settings.repository_url, settings)
            report = verify_keyless(backend)
            location = redact_url(settings.repository_url)
        else:
            repository = _open_repository(config)
            location = repository.location
            try:
                report = run_verify(repository, read_data=read_data)
            finally:
                repository.close()
        typer.echo(
            f"{report.snapshots} snapshots, {report.objects} objects ({report.referenced} referenced), "
            f"{report.bytes_read} bytes read"
        )
        for p in report.problems:  # one line per problem: severity, code, object, message
            typer.echo(f"{p.severity:<7} {p.code:<7} {p.name}: {p.message}")
        if report.truncated:
            typer.echo("(problem list truncated)")
        if not report.ok:
            raise VerifyFailed(url=location, what=f"{len(report.errors)} error(s)")
        typer.echo("no errors found")

    run_cli(body)


@app.command()
def prune(
    keep_cycles: int | None = typer.Option(
        None, "--keep-cycles", min=1, help="keep the newest N cycles per org"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only report what would be removed"),
    config: Path | None = _REPO_CONFIG_OPT,
) -> None:
    """Remove snapshots of expired cycles, then every object no snapshot references."""

    def body() -> None:
        from engine.sink.prune import prune as run_prune

        repository = _open_repository(config)
        try:
            report = run_prune(repository, keep_cycles=keep_cycles, dry_run=dry_run)
        finally:
            repository.close()
        verb = "would remove" if dry_run else "removed"
        for info in report.snapshots_removed:
            typer.echo(f"{verb} snapshot {info.org}/{info.job_id}")
        typer.echo(
            f"{verb} {len(report.snapshots_removed)} snapshot(s), {report.objects_removed} object(s) "
            f"({report.bytes_removed} bytes), {report.temp_files_removed} temporary file(s); "
            f"kept {len(report.snapshots_kept)} snapshot(s)"
        )

    run_cli(body)


# --- sfvault catalog ... (catalog engineer's lines) ----------------------------------------

catalog_app = typer.Typer(help="The job catalog (SQLite or PostgreSQL).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
_CATALOG_CONFIG_OPT = typer.Option(
    None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)"
)


@catalog_app.command("upgrade")
def catalog_upgrade(config: Path | None = _CATALOG_CONFIG_OPT) -> None:
    """Create the catalog, or migrate it to this version's schema."""

    def body() -> None:
        from engine.catalog.db import head_revision, migrate, redact

        settings = load_settings(config)
        migrate(settings.catalog_url)
        typer.echo(f"catalog {redact(settings.catalog_url)} is at schema {head_revision()}")

    run_cli(body)


@catalog_app.command("rebuild")
def catalog_rebuild(
    config: Path | None = _CATALOG_CONFIG_OPT,
    org: str | None = typer.Option(None, "--org", help="only this org's snapshots"),
    skip_unreadable: bool = typer.Option(
        False, "--skip-unreadable", help="list unreadable snapshots instead of stopping at the first"
    ),
) -> None:
    """Recreate the catalog's orgs, jobs and per-object results from the repository alone."""

    def body() -> None:
        from engine.catalog.db import make_engine, migrate, session_factory, transaction
        from engine.catalog.rebuild import rebuild_catalog
        from engine.sink.repository import open_repository

        settings = load_settings(config)
        repo = open_repository(settings)
        engine = make_engine(settings.catalog_url)
        try:
            migrate(engine)
            with transaction(session_factory(engine)) as session:
                report = rebuild_catalog(session, repo, org=org, skip_unreadable=skip_unreadable)
        finally:
            engine.dispose()
            repo.close()
        typer.echo(
            f"{report.snapshots} snapshots: {report.jobs_created} jobs created, "
            f"{report.jobs_updated} updated, {report.objects} object results, "
            f"orgs created: {', '.join(report.orgs_created) or 'none'}"
        )
        for name, error in report.unreadable:
            err_console.print(f"[yellow]unreadable[/] {name}: {error}")
        if report.unreadable:
            sys.exit(1)

    run_cli(body)


if __name__ == "__main__":
    app()
