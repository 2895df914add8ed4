"""``sfvault init``, ``verify`` and ``prune``: the repository's commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import CONFIG_OPT, JSON_OPT, config_path, open_repository_from, writable_file
from engine.config import load_settings, resolve_paths
from engine.console import print_json, run_cli

if TYPE_CHECKING:
    from engine.config import Settings


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
    config: Path | None = CONFIG_OPT,
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
        settings = load_settings(config, missing_ok=True, **overrides)
        path = config_path(config)
        _check_init_paths(settings, path, key_file=not key_vault_key)
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
        if path.exists():
            typer.echo(f"{path} exists; left unchanged")
            return
        lines = ["[sfvault]"]
        # absolute paths: the same file names the same catalog, repository and key from any folder
        keys = ("repository_url", "key_file", "catalog_url", "scheduler_address", "scratch_dir", "export_dir")
        written = resolve_paths({k: str(getattr(settings, k)) for k in keys}, Path.cwd())
        for key in keys:
            lines.append(f"{key} = {json.dumps(written[key])}")
        if settings.azure_account_name:
            lines.append(f"azure_account_name = {json.dumps(settings.azure_account_name)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        typer.echo(f"wrote {path}")

    run_cli(body)


def _check_init_paths(settings: Settings, config: Path, *, key_file: bool) -> None:
    """What ``init`` writes must be writable before it creates anything: the config file (when
    absent), the key file (when absent) and a local repository's folder."""
    if not config.exists():
        writable_file(config, "--config")
    if key_file and not Path(settings.key_file).exists():
        writable_file(Path(settings.key_file), "--key-file")
    url = settings.repository_url
    local = url[len("file://") :] if url.startswith("file://") else url if "://" not in url else None
    if local:
        writable_file(Path(local), "--repo", folder=True)


def verify(
    read_data: bool = typer.Option(
        False, "--read-data", help="download, decrypt and re-hash every referenced object"
    ),
    no_key: bool = typer.Option(False, "--no-key", help="keyless pass: object headers and sizes only"),
    as_json: bool = JSON_OPT,
    config: Path | None = CONFIG_OPT,
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
            repository = open_repository_from(config)
            location = repository.location
            try:
                report = run_verify(repository, read_data=read_data)
            finally:
                repository.close()
        if as_json:
            from dataclasses import asdict

            print_json(asdict(report) | {"ok": report.ok})
            if not report.ok:
                raise VerifyFailed(url=location, what=f"{len(report.errors)} error(s)")
            return
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


def prune(
    keep_cycles: int | None = typer.Option(
        None, "--keep-cycles", min=1, help="keep the newest N cycles per org"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only report what would be removed"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Remove snapshots of expired cycles, then every object no snapshot references."""

    def body() -> None:
        from engine.sink.prune import prune as run_prune

        repository = open_repository_from(config)
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
