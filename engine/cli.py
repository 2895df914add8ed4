"""The ``sfvault`` command line: a thin Typer front end over the engine.

This is the only engine module that knows about the terminal. Every command maps
``SfvaultError`` to its exit code through :func:`run_cli`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from api.cli import serve, token_app
from emulator.cli import app as emulator_app
from engine.config import load_settings
from engine.console import err_console, run_cli

app = typer.Typer(name="sfvault", help="Backup engine for Salesforce.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator", help="Run and drive the Salesforce org emulator.")
app.add_typer(token_app, name="token")
app.command("serve")(serve)

T = TypeVar("T")


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
        from engine.catalog.db import catalog_transaction
        from engine.catalog.rebuild import rebuild_catalog
        from engine.sink.repository import open_repository

        settings = load_settings(config)
        repo = open_repository(settings)
        try:
            with catalog_transaction(settings.catalog_url) as session:
                report = rebuild_catalog(session, repo, org=org, skip_unreadable=skip_unreadable)
        finally:
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


# --- sfvault org add / backup / jobs / job show|cancel (jobs engineer's lines) -------------

org_app = typer.Typer(help="Connected Salesforce orgs.", no_args_is_help=True)
app.add_typer(org_app, name="org")
job_app = typer.Typer(help="One backup job.", no_args_is_help=True)
app.add_typer(job_app, name="job")
_JOBS_CONFIG_OPT = typer.Option(
    None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)"
)


@org_app.command("add")
def org_add(
    name: str = typer.Argument(..., help="a short name for the org ([A-Za-z0-9._-])"),
    instance_url: str = typer.Option(..., "--instance-url", help="https://<my-domain>.my.salesforce.com"),
    username: str | None = typer.Option(None, "--username", help="integration user"),
    password: str | None = typer.Option(None, "--password", help="its password"),
    security_token: str | None = typer.Option(None, "--security-token", help="its security token"),
    client_id: str | None = typer.Option(None, "--client-id", help="connected app consumer key"),
    client_secret: str | None = typer.Option(None, "--client-secret", help="connected app secret"),
    login_url: str | None = typer.Option(
        None, "--login-url", help="OAuth host (default https://login.salesforce.com)"
    ),
    ca_file: str | None = typer.Option(None, "--ca-file", help="extra CA certificate (test orgs)"),
    time_zone: str = typer.Option("UTC", "--time-zone", help="the org's time zone (schedules)"),
    config: Path | None = _JOBS_CONFIG_OPT,
) -> None:
    """Connect an org: the credentials are checked against it, then stored encrypted in the catalog."""

    def body() -> None:
        from engine.catalog.db import open_catalog
        from engine.jobs.connect import connect_org
        from engine.jobs.credentials import catalog_sealer, credentials_record

        settings = load_settings(config)
        record = credentials_record(
            instance_url=instance_url, username=username, password=password,
            security_token=security_token, client_id=client_id, client_secret=client_secret,
            login_url=login_url, ca_file=ca_file,
        )  # fmt: skip
        with open_catalog(settings.catalog_url) as sessions:
            org = connect_org(
                settings, sessions, name=name, record=record, time_zone=time_zone,
                sealer=catalog_sealer(settings, create=True),
            )  # fmt: skip
        typer.echo(
            f"connected org {name} ({org.sf_org_id or 'org id unknown'}); credentials checked and stored "
            f"encrypted; API allowance {org.api_remaining if org.api_remaining is not None else '?'}"
            f"/{org.api_max if org.api_max is not None else '?'} left today"
        )

    run_cli(body)


@app.command()
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
    config: Path | None = _JOBS_CONFIG_OPT,
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

        settings = load_settings(config)
        wanted = tuple(o.strip() for o in objects.split(",") if o.strip()) if objects else None
        request = BackupRequest(org=name, full=full, objects=wanted)
        engine = make_engine(settings.catalog_url)
        try:
            migrate(engine)
            service = JobService(settings, session_factory(engine), clock=SystemClock())
            job = service.admit(name, request, trigger="manual", override=override_policy)
            err_console.print(f"job {job.job_id} queued ({job.kind})")
            with service.heartbeat(job.job_id):
                try:
                    client_cm = dask_client(job.settings, scheduler=scheduler, n_workers=workers)
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
        calls = sum(v for k, v in o.calls.items() if k not in ("login", "versions"))
        table.add_row(name, o.mode, o.state, f"{o.records:,}", f"{o.deleted:,}", f"{o.bytes:,}",
                      f"{o.duration_s:.1f}", str(calls), o.error_code or "")  # fmt: skip
    Console().print(table)
    if result.state == "partial":
        failed = sorted(n for n, o in result.objects.items() if o.state == "failed")
        typer.echo(
            f"partial: {len(failed)} object(s) failed ({', '.join(failed)}); this job's recovery point and "
            f"exports hold them as of an earlier job, or not at all: sfvault job show {result.job_id}"
        )
    rate = result.records / result.duration_s if result.duration_s else 0.0
    typer.echo(
        f"{result.records:,} records, {result.bytes:,} bytes in {result.duration_s:.1f}s "
        f"({rate:,.0f} records/s), {result.api_calls} API calls; snapshot {result.snapshot or 'none'}"
    )


@app.command("jobs")
def jobs_list(
    name: str = typer.Argument(..., help="org name"),
    limit: int = typer.Option(20, "--limit", min=1, help="newest N jobs"),
    config: Path | None = _JOBS_CONFIG_OPT,
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
            table = Table(title=f"jobs of {name}")
            for col in ("job", "kind", "state", "started", "finished", "records", "bytes", "error"):
                table.add_column(col)
            for j in rows:
                table.add_row(
                    j.id, j.kind, j.state, f"{j.started_at:%Y-%m-%d %H:%M:%S}" if j.started_at else "",
                    f"{j.finished_at:%Y-%m-%d %H:%M:%S}" if j.finished_at else "", f"{j.records:,}",
                    f"{j.bytes:,}", j.error_code or "",
                )  # fmt: skip
        Console().print(table)

    run_cli(body)


@job_app.command("show")
def job_show(job_id: str = typer.Argument(...), config: Path | None = _JOBS_CONFIG_OPT) -> None:
    """One job: its state and, per object, records, bytes, time, API calls and error code."""

    def body() -> None:
        from rich.table import Table

        from engine.catalog import jobs as cjobs
        from engine.catalog.db import catalog_transaction

        settings = load_settings(config)
        with catalog_transaction(settings.catalog_url) as s:
            j = cjobs.get_job(s, job_id, with_objects=True)
            typer.echo(
                f"job {j.id}: {j.kind} {j.state}; cycle {j.cycle_id}; started {j.started_at}; "
                f"finished {j.finished_at}; {j.records:,} records, {j.bytes:,} bytes; "
                f"snapshot {j.snapshot_ref or 'none'}"
            )
            if j.error_code:
                typer.echo(f"error {j.error_code}: {j.error_message}")
            as_of = cjobs.objects_as_of(s, j)
            stale = [a for a in as_of.values() if not a.current]
            if stale:
                typer.echo(f"{j.state}: {len(stale)} object(s) not backed up by this job; its recovery "
                           "point and exports hold them as of an earlier job, or not at all:")  # fmt: skip
                for a in stale:
                    typer.echo(f"  {a.object}: {_as_of_text(a, j.id)}")
            table = Table()
            for col in ("object", "state", "records", "bytes", "chunks", "seconds", "REST", "Bulk jobs",
                        "Bulk pages", "files n/a", "error / warning", "data as of"):  # fmt: skip
                table.add_column(col)
            for o in sorted(j.objects, key=lambda o: o.object_name):
                table.add_row(o.object_name, o.state, f"{o.records:,}", f"{o.bytes:,}", str(o.chunks),
                              f"{o.duration_s:.1f}", str(o.rest_calls), str(o.bulk2_jobs),
                              str(o.bulk2_pages), str(o.files_unavailable or ""),
                              o.error_code or o.warning_code or "",
                              _as_of_cell(as_of.get(o.object_name)))  # fmt: skip
            for o in sorted(j.objects, key=lambda o: o.object_name):
                if o.warning_code:
                    typer.echo(f"warning {o.warning_code} on {o.object_name}: {o.warning_message}")
        Console().print(table)

    run_cli(body)


@job_app.command("cancel")
def job_cancel(job_id: str = typer.Argument(...), config: Path | None = _JOBS_CONFIG_OPT) -> None:
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



# --- sfvault data / compare / export (recovery points, issue 6) ----------------------------

_DIFF_CONFIG_OPT = typer.Option(
    None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)"
)


if TYPE_CHECKING:
    from engine.diff.export import ExportProgress
    from engine.diff.recovery import RecoveryPoints
    from engine.jobs.exports import ExportRequest
    from engine.model import ObjectAsOf


def _recovery_points(config: Path | None, org: str) -> tuple[Repository, RecoveryPoints]:
    from engine.diff.recovery import RecoveryPoints

    settings = load_settings(config)
    repo = _open_repository(config)
    try:
        rp = RecoveryPoints(repo, org, scratch_root=settings.scratch_dir)
    except BaseException:
        repo.close()
        raise
    return repo, rp


@app.command()
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
    config: Path | None = _DIFF_CONFIG_OPT,
) -> None:
    """Per object at a job: records, backup size, added/changed/removed since the previous job, API use."""
    from rich.table import Table

    from engine.diff.compare import OBJECT_TYPES, StatsFilter, job_stats
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
            stale = [a for a in rp.snapshots.as_of(target.job_id) if not a.current]
        finally:
            rp.close()
            repo.close()
        t = Table(title=f"{name} at job {target.job_id} ({target.kind}, cycle {target.cycle_id})")
        cols = ("object", "type", "records", "backup bytes", "added", "changed", "removed", "REST", "Bulk",
                "as of")  # fmt: skip
        for col in cols:
            t.add_column(col, justify="left" if col in ("object", "type", "as of") else "right")
        for s in stats:
            t.add_row(s.object, s.type, str(s.records), str(s.backup_bytes), str(s.added), str(s.changed),
                      str(s.removed), str(s.rest_calls), str(s.bulk_jobs),
                      "this job" if s.as_of == "this_job" else f"job {s.as_of_job}")  # fmt: skip
        Console().print(t)
        if stale:
            partial = "partial job: " if any(a.error_code for a in stale) else ""
            typer.echo(f"{partial}{len(stale)} object(s) not backed up by job {target.job_id}; "
                       "their records are as of an earlier job, or they are absent:")  # fmt: skip
            for a in stale:
                typer.echo(f"  {a.object}: {_as_of_text(a, target.job_id)}")

    run_cli(body)


@app.command()
def compare(
    name: str = typer.Argument(..., help="org name"),
    job: str | None = typer.Option(None, "--job", help="the newer job (default: the newest)"),
    against: str | None = typer.Option(None, "--against", help="the older job (default: the previous one)"),
    details: Path | None = typer.Option(None, "--details", help="write per-object Id and field files here"),
    objects: str | None = typer.Option(None, "--objects", help="comma-separated objects (default: all)"),
    with_modstamp: bool = typer.Option(
        False, "--with-systemmodstamp", help="count SystemModstamp-only changes"
    ),
    config: Path | None = _DIFF_CONFIG_OPT,
) -> None:
    """Compare two jobs of a cycle: added, removed and changed records per object."""
    from rich.table import Table

    from engine.diff.compare import DEFAULT_IGNORED
    from engine.diff.compare import compare as do_compare

    def body() -> None:
        repo, rp = _recovery_points(config, name)
        try:
            names = [o.strip() for o in objects.split(",") if o.strip()] if objects else None
            c = do_compare(rp, job, against, objects=names,
                           ignore_fields=() if with_modstamp else DEFAULT_IGNORED)  # fmt: skip
            t = Table(title=f"{name}: job {c.job} against {c.against}")
            for col in ("object", "added", "changed", "removed", "records now", "records before"):
                t.add_column(col, justify="left" if col == "object" else "right")
            for o, d in sorted(c.objects.items()):
                counts = (d.added, d.changed, d.removed, d.records_new, d.records_old)
                t.add_row(o, *(str(v) for v in counts))
            Console().print(t)
            if details is not None:
                files = c.write_details(details)
                typer.echo(f"wrote {len(files)} detail files to {details}")
        finally:
            rp.close()
            repo.close()

    run_cli(body)


export_app = typer.Typer(help="Export records or files into an AES-encrypted ZIP.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _run_export(config: Path | None, request: ExportRequest, monthly_limit_gb: float | None) -> None:
    from rich.progress import Progress

    from engine.jobs.exports import run_export

    settings = load_settings(config)
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
            typer.echo(f"  {a.object}: {_as_of_text(a, out.job)}")
    for obj, n in sorted(out.rows.items()):
        note = f" (as of earlier job {stale[obj].as_of_job})" if obj in stale else ""
        typer.echo(f"  {obj}: {n} records{note}")
    if out.files:
        typer.echo(f"  {out.files} files")
    typer.echo(f"ZIP password (shown once; admins can show it again): {out.password}")


def _as_of_cell(a: ObjectAsOf | None) -> str:
    """A table cell: ``this job``, ``job <id>`` (an earlier job), ``absent``, or empty."""
    if a is None:
        return ""
    return {"this_job": "this job", "absent": "absent"}.get(a.as_of, f"job {a.as_of_job}")


def _as_of_text(a: ObjectAsOf, job: str) -> str:
    """Why an object is not as of ``job`` and which job it is as of, in one phrase."""
    why = f"failed in job {job} ({a.error_code})" if a.error_code else f"not backed up by job {job}"
    if a.as_of == "absent":
        return f"absent: {why}, and no earlier job of the cycle backed it up"
    if a.as_of == "earlier_job":
        return f"as of earlier job {a.as_of_job}: {why}"
    return f"as of job {a.as_of_job}"


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


def _objects_opt(objects: str | None, all_: bool) -> tuple[str, ...] | None:
    from engine.errors import ConfigError

    if bool(objects) == all_:
        raise ConfigError(what="give exactly one of --objects A,B or --all")
    return None if all_ else tuple(o.strip() for o in (objects or "").split(",") if o.strip())


@export_app.command("records")
def export_records_cmd(
    name: str = typer.Argument(..., help="org name"),
    objects: str | None = typer.Option(None, "--objects", help="comma-separated object names"),
    all_: bool = typer.Option(False, "--all", help="every object of the backup"),
    fmt: str = typer.Option("csv", "--format", help="csv or mysql"),
    scope: str = typer.Option("cycle", "--scope", help="changed (since the previous job) or cycle"),
    out: Path = typer.Option(..., "--out", help="the ZIP file to write"),
    job: str | None = typer.Option(None, "--job", help="job id (default: the newest)"),
    monthly_limit_gb: float | None = _MONTHLY_LIMIT_OPT,
    config: Path | None = _DIFF_CONFIG_OPT,
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
    scope: str = typer.Option("cycle", "--scope", help="changed (since the previous job) or cycle"),
    out: Path = typer.Option(..., "--out", help="the ZIP file to write"),
    job: str | None = typer.Option(None, "--job", help="job id (default: the newest)"),
    monthly_limit_gb: float | None = _MONTHLY_LIMIT_OPT,
    config: Path | None = _DIFF_CONFIG_OPT,
) -> None:
    """Export file bodies with their original names, plus index.csv."""
    names = tuple(o.strip() for o in objects.split(",") if o.strip()) if objects else None
    run_cli(lambda: _export_cmd(name, kind="files", fmt="files", scope=scope, objects=names, out=out, job=job,
                                monthly_limit_gb=monthly_limit_gb, config=config))  # fmt: skip


if __name__ == "__main__":
    app()
