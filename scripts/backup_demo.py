"""``make demo``: an emulated org → full backup on a LocalCluster → churn → incremental → summary.

Starts the Salesforce org emulator in its own process (about 1M generated records), creates an
encrypted repository, a SQLite catalog and a key in a temporary folder, connects the org with
``sfvault org add`` (credentials checked against the org, stored encrypted), runs a full backup
with ``sfvault backup`` on an embedded Dask LocalCluster, applies 1% churn, runs an incremental,
verifies the repository and checks the newest snapshot against the emulator's own rows, then
prints a summary (objects, records, bytes, time, records/s, API calls).

    .venv/bin/python scripts/backup_demo.py [--scale 1000000] [--churn 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cluster import dask_client  # noqa: E402
from emulator.launcher import start_emulator  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.jobs.planning import BackupRequest, JobOptions  # noqa: E402
from engine.jobs.runner import BackupResult, run_backup  # noqa: E402


def _sfvault(console: Console, *args: str, env_config: Path) -> None:
    """Run one ``sfvault`` CLI command in-process (exactly what a user types)."""
    import os

    from typer.testing import CliRunner

    from engine.cli import app

    console.print(f"[dim]$ sfvault {' '.join(_redact(args))}[/]")
    os.environ["SFVAULT_CONFIG"] = str(env_config)
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    console.print(result.output.rstrip())
    if result.exit_code != 0:
        raise SystemExit(result.exit_code)


def _redact(args: tuple[str, ...]) -> list[str]:
    out, hide = [], False
    for a in args:
        out.append("****" if hide else a)
        hide = a in ("--password", "--security-token", "--client-secret")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn", type=float, default=1.0, help="percent of each object changed")
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: cores)")
    parser.add_argument("--keep", type=Path, default=None, help="keep repository + catalog in DIR")
    parser.add_argument("--no-file-bodies", action="store_true", help="records only, no file bodies")
    args = parser.parse_args(argv)
    console = Console()
    t_start = time.perf_counter()

    with console.status(f"starting the emulator and generating {args.scale:,} records ..."):
        t0 = time.perf_counter()
        em = start_emulator(scale=args.scale, seed=args.seed, tls=False, timeout=900)
    console.print(f"emulator ready at [bold]{em.url}[/] in {time.perf_counter() - t0:.1f}s (profile fast)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="sfvault-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    config = work / "sfvault.toml"
    try:
        import os

        i = em.info
        os.environ["SFVAULT_CATALOG_URL"] = f"sqlite:///{work / 'catalog.db'}"
        _sfvault(console, "init", "--repo", str(work / "repo"), "--key-file", str(work / "keys" / "repo.key"),
                 env_config=config)  # fmt: skip
        _sfvault(
            console, "org", "add", "demo", "--instance-url", i["instance_url"], "--login-url", i["login_url"],
            "--username", i["username"], "--password", i["password"], "--security-token", i["security_token"],
            "--client-id", i["client_id"], "--client-secret", i["client_secret"], env_config=config,
        )  # fmt: skip
        from engine.config import load_settings

        settings: Settings = load_settings(config)
        results: list[tuple[str, BackupResult]] = []
        # the churn purges records (hard deletes): sweep Ids in every job so the ground-truth check holds
        options = JobOptions(file_bodies=not args.no_file_bodies, id_sweep_every=1)
        with dask_client(settings, n_workers=args.workers) as client:
            console.print(f"Dask LocalCluster: {len(client.scheduler_info()['workers'])} worker processes")
            for label in ("full", "incremental"):
                if label == "incremental":
                    summary = em.admin("POST", "/churn", json={"percent": args.churn, "seed": 42})
                    changes = sum(sum(v.values()) for k, v in summary.items() if isinstance(v, dict))
                    console.print(
                        f"churn {args.churn}%: {changes:,} inserts/updates/deletes/undeletes/purges"
                    )
                with console.status(f"{label} backup ..."):
                    res = run_backup(settings, client, "demo", BackupRequest(org="demo"), options=options)
                console.print(
                    f"{label} backup {res.job_id}: [bold]{res.state}[/], {res.records:,} records in "
                    f"{res.duration_s:.1f}s"
                )
                results.append((label, res))
        _sfvault(console, "jobs", "demo", env_config=config)
        _sfvault(console, "verify", env_config=config)
        _check_ground_truth(console, em, settings, sorted(results[-1][1].objects))
        _summary(console, results)
        console.print(f"demo finished in {time.perf_counter() - t_start:.0f}s; data in {work}")
        return 0 if all(r.state == "succeeded" for _, r in results) else 1
    finally:
        em.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _check_ground_truth(console: Console, em: object, settings: Settings, objects: list[str]) -> None:
    from devkit.groundtruth import compare_org
    from engine.sink.repository import open_repository

    with console.status("comparing the newest snapshot with the emulator's rows ..."):
        repo = open_repository(settings)
        try:
            diff = {k: v for k, v in compare_org(em, repo, "demo", objects).items() if v}
        finally:
            repo.close()
    if diff:
        console.print(f"[red]snapshot differs from the org:[/] {diff}")
    else:
        console.print(f"[green]newest snapshot equals the org row for row[/] ({len(objects)} objects)")


def _summary(console: Console, results: list[tuple[str, BackupResult]]) -> None:
    table = Table(title="sfvault backup summary")
    for col in ("job", "objects", "records", "deleted", "bytes", "time (s)", "records/s", "API calls",
                "Bulk jobs"):  # fmt: skip
        table.add_column(col, justify="left" if col == "job" else "right")
    for label, r in results:
        deleted = sum(o.deleted for o in r.objects.values())
        table.add_row(
            label, str(len(r.objects)), f"{r.records:,}", f"{deleted:,}", f"{r.bytes:,}",
            f"{r.duration_s:.1f}",
            f"{r.records / r.duration_s:,.0f}" if r.duration_s else "-",
            f"{r.api_calls:,}",
            str(sum(o.bulk_jobs for o in r.objects.values())),
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
