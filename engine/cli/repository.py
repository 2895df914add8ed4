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
            settings = load_settings(config)
            repository = open_repository_from(config)
            location = repository.location
            try:
                expected = catalog_snapshots(settings.catalog_url, settings.repository_url)
                report = run_verify(repository, read_data=read_data, expected_jobs=expected)
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


def catalog_snapshots(catalog_url: str, repository_url: str) -> list[tuple[str, str]]:
    """``(org, job id)`` of every job the catalog recorded a snapshot of in this repository, for
    verify's cross-check; none when no catalog exists yet (verify never creates one)."""
    from sqlalchemy import or_, select
    from sqlalchemy.engine import make_url

    from engine.catalog.db import catalog_transaction
    from engine.catalog.models import Job, Org
    from engine.sink.manifest import snapshot_info

    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return []
    with catalog_transaction(catalog_url) as s:
        rows = s.execute(
            select(Org.name, Job.snapshot_ref)
            .join(Job, Job.org_id == Org.id)
            .where(Job.snapshot_ref.is_not(None))
            .where(or_(Org.storage_location.is_(None), Org.storage_location == repository_url))
        ).all()
    out = []
    for _org, ref in rows:
        info = snapshot_info(str(ref), 0)
        if info is not None:
            out.append((info.org, info.job_id))
    return out


def _mark_pruned(catalog_url: str, names: list[str]) -> int:
    """Stamp the catalog's jobs whose snapshots prune removed (none without a catalog)."""
    from datetime import UTC, datetime

    from sqlalchemy.engine import make_url

    from engine.catalog.db import catalog_transaction
    from engine.catalog.jobs import mark_pruned

    url = make_url(catalog_url)
    if not names or (
        url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists())
    ):
        return 0
    with catalog_transaction(catalog_url) as s:
        return mark_pruned(s, names, now=datetime.now(UTC))


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

        settings = load_settings(config)
        repository = open_repository_from(config)
        try:
            report = run_prune(repository, keep_cycles=keep_cycles, dry_run=dry_run)
        finally:
            repository.close()
        if not dry_run:
            marked = _mark_pruned(settings.catalog_url, [i.name for i in report.snapshots_removed])
            if marked:
                typer.echo(f"marked {marked} job(s) as pruned in the catalog")
        verb = "would remove" if dry_run else "removed"
        for info in report.snapshots_removed:
            typer.echo(f"{verb} snapshot {info.org}/{info.job_id}")
        for obj, jobs in sorted(report.removed_by_object.items()):
            typer.echo(f"{verb} {obj}: data of {len(jobs)} job(s) ({', '.join(jobs)})")
        for cycle in report.kept_for_last_copy:
            typer.echo(f"kept cycle {cycle}: it holds the newest good copy of some object")
        typer.echo(
            f"{verb} {len(report.snapshots_removed)} snapshot(s), {report.objects_removed} object(s) "
            f"({report.bytes_removed} bytes), {report.temp_files_removed} temporary file(s); "
            f"kept {len(report.snapshots_kept)} snapshot(s)"
        )

    run_cli(body)
