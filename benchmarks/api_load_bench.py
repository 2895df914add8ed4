"""API load benchmark: the overview tiles and job lists of ``sfvault serve`` under concurrent clients.

For each catalog backend (SQLite file, and a real PostgreSQL server started by
``devkit/postgres.py``):

1. seed the catalog: ``--orgs`` orgs with default settings and ``--jobs`` finished jobs spread
   over them and over the last months (every 10th job with per-object rows), in bulk inserts;
2. start ``sfvault serve`` (uvicorn, scheduler off) on it, in its own process;
3. ``--clients`` concurrent clients (one ``httpx.AsyncClient`` per client, one event loop) for
   ``--seconds`` seconds, each alternating ``GET /v1/orgs`` (tiles) and
   ``GET /v1/orgs/{org}/jobs`` (job list, first page of 50) over the orgs in turn.

Reported per backend and endpoint: requests, requests/s, p50/p99/max latency, errors (any
status other than 200, or a transport error), and the median latency of one client alone
(measured before the load, to tell the cost of a request from queueing).
JSON in ``benchmarks/results/`` + a printed table.

    .venv/bin/python -m benchmarks.api_load_bench [--orgs 200] [--jobs 10000] [--clients 50]
        [--seconds 30] [--backends sqlite,postgres] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TILES = "GET /v1/orgs"
JOB_LIST = "GET /v1/orgs/{org}/jobs"
SERIAL_SAMPLES = 5
OBJECTS = ("Account", "Contact", "Opportunity", "Case", "Lead")


def seed(catalog_url: str, n_orgs: int, n_jobs: int) -> tuple[list[str], str]:
    """Orgs and finished jobs in bulk; returns the org names and an admin token."""
    from sqlalchemy import insert

    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.catalog.models import Job, JobObject, JobState, Role
    from engine.catalog.orgs import create_org
    from engine.catalog.tokens import create_token

    engine = make_engine(catalog_url)
    try:
        migrate(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as s:
            _row, token = create_token(s, name="bench", role=Role.ADMIN)
            orgs = [
                create_org(s, name=f"org-{i:04d}", instance_url=f"https://org{i}.example.invalid")
                for i in range(n_orgs)
            ]
            org_ids = [(o.id, o.name) for o in orgs]
        start = datetime(2026, 6, 1, tzinfo=UTC)
        jobs: list[dict[str, Any]] = []
        objects: list[dict[str, Any]] = []
        for k in range(n_jobs):
            org_id, _name = org_ids[k % len(org_ids)]
            created = start + timedelta(minutes=37 * k)
            job_id = f"{created:%Y%m%dT%H%M%SZ}-{k:012x}"
            state = JobState.FAILED.value if k % 17 == 0 else JobState.SUCCEEDED.value
            jobs.append(
                {
                    "id": job_id,
                    "org_id": org_id,
                    "kind": "full" if k % 30 == 0 else "incremental",
                    "lane": "full" if k % 30 == 0 else "incremental",
                    "trigger": "scheduled",
                    "state": state,
                    "cancel_requested": False,
                    "created_at": created,
                    "started_at": created + timedelta(seconds=5),
                    "finished_at": created + timedelta(minutes=4),
                    "records": 1000 + k,
                    "bytes": 100_000 + k,
                    "metadata_items": 10,
                    "error_code": "SFV-409" if state == JobState.FAILED.value else None,
                }
            )
            if k % 10 == 0:
                objects.extend(
                    {
                        "job_id": job_id,
                        "object_name": obj,
                        "state": "succeeded",
                        "records": 100 + k,
                        "bytes": 10_000,
                        "chunks": 1,
                        "duration_s": 1.5,
                        "rest_calls": 2,
                    }
                    for obj in OBJECTS
                )
        with transaction(sessions) as s:
            for i in range(0, len(jobs), 2000):
                s.execute(insert(Job), jobs[i : i + 2000])
            for i in range(0, len(objects), 2000):
                s.execute(insert(JobObject), objects[i : i + 2000])
        return [name for _id, name in org_ids], token
    finally:
        engine.dispose()


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {TILES: [], JOB_LIST: []})
    errors: dict[str, int] = field(default_factory=lambda: {TILES: 0, JOB_LIST: 0})
    error_samples: list[str] = field(default_factory=list)


async def _client(
    base_url: str, token: str, orgs: list[str], index: int, deadline: float, stats: Stats
) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, trust_env=False) as http:
        k = 0
        while time.perf_counter() < deadline:
            if (index + k) % 2 == 0:
                name, url = TILES, "/v1/orgs"
            else:
                name, url = JOB_LIST, f"/v1/orgs/{orgs[(index * 7 + k) % len(orgs)]}/jobs"
            k += 1
            t0 = time.perf_counter()
            try:
                resp = await http.get(url)
                ok = resp.status_code == 200
                why = f"{resp.status_code} {resp.text[:200]}"
            except httpx.HTTPError as exc:
                ok, why = False, repr(exc)
            stats.latencies[name].append(time.perf_counter() - t0)
            if not ok:
                stats.errors[name] += 1
                if len(stats.error_samples) < 5:
                    stats.error_samples.append(f"{name}: {why}")


async def _load(
    base_url: str, token: str, orgs: list[str], clients: int, seconds: float
) -> tuple[Stats, float]:
    stats = Stats()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    await asyncio.gather(*(_client(base_url, token, orgs, i, deadline, stats) for i in range(clients)))
    return stats, time.perf_counter() - t0


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def _summarise(stats: Stats, elapsed: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in stats.latencies.items():
        v = sorted(values)
        out[name] = {
            "requests": len(v),
            "requests_per_s": len(v) / elapsed,
            "errors": stats.errors[name],
            "p50_ms": _pct(v, 0.50) * 1000,
            "p99_ms": _pct(v, 0.99) * 1000,
            "max_ms": (v[-1] * 1000 if v else 0.0),
        }
    total = sum(len(v) for v in stats.latencies.values())
    out["all"] = {"requests": total, "requests_per_s": total / elapsed, "errors": sum(stats.errors.values())}
    return out


def run_backend(backend: str, catalog_url: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from devkit.api_server import running_api_server, write_config

    t0 = time.perf_counter()
    orgs, token = seed(catalog_url, args.orgs, args.jobs)
    seed_s = time.perf_counter() - t0
    config = write_config(
        root / f"{backend}.toml",
        {
            "catalog_url": catalog_url,
            "repository_url": str(root / "repo"),
            "key_file": str(root / "keys" / "repo.key"),
            "scratch_dir": str(root / "scratch"),
            "export_dir": str(root / "exports"),
            "scheduler_enabled": False,
        },
    )
    with running_api_server(config) as server:
        serial_ms: dict[str, float] = {}
        with server.client(token) as one:  # first requests pay for imports and connection pools
            for name, url in ((TILES, "/v1/orgs"), (JOB_LIST, f"/v1/orgs/{orgs[0]}/jobs")):
                one.get(url).raise_for_status()
                times = []
                for _ in range(SERIAL_SAMPLES):  # one client alone: the cost of one request
                    t = time.perf_counter()
                    one.get(url).raise_for_status()
                    times.append(time.perf_counter() - t)
                serial_ms[name] = sorted(times)[len(times) // 2] * 1000
        stats, elapsed = asyncio.run(_load(server.base_url, token, orgs, args.clients, args.seconds))
    return {
        "backend": backend,
        "orgs": args.orgs,
        "jobs": args.jobs,
        "clients": args.clients,
        "seconds": elapsed,
        "seed_seconds": seed_s,
        "endpoints": _summarise(stats, elapsed),
        "serial_p50_ms": serial_ms,
        "error_samples": stats.error_samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sfvault serve under concurrent tile and job-list clients")
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke run: 5 orgs, 50 jobs, 5 clients, 2 s, SQLite"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.orgs, args.jobs, args.clients, args.seconds, args.backends = 5, 50, 5, 2.0, "sqlite"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backend(s): {sorted(unknown)}")
    result: dict[str, Any] = {"scenario": "api_load", "tiny": args.tiny, "runs": []}
    with tempfile.TemporaryDirectory(prefix="sfvault-api-bench-") as tmp:
        for backend in backends:
            root = Path(tmp) / backend
            root.mkdir()
            if backend == "sqlite":
                result["runs"].append(run_backend(backend, f"sqlite:///{root / 'catalog.db'}", root, args))
            else:
                from devkit.postgres import running_postgres

                with running_postgres() as pg:
                    url = pg.url(pg.create_database("bench"))
                    result["runs"].append(run_backend(backend, url, root, args))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = args.results_dir / f"api_load_bench{'-tiny' if args.tiny else ''}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    _print(result)
    print(f"results: {path}")
    ok = all(
        r["endpoints"]["all"]["errors"] == 0 and r["endpoints"]["all"]["requests"] > 0 for r in result["runs"]
    )
    return 0 if ok else 1


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="API load: tiles and job lists under concurrent clients")
    for col in ("catalog", "endpoint", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(col, justify="left" if col in ("catalog", "endpoint") else "right")
    for r in result["runs"]:
        scale = f"{r['orgs']} orgs, {r['jobs']:,} jobs, {r['clients']} clients, {r['seconds']:.0f}s"
        label = f"{r['backend']} ({scale})"
        for name in (TILES, JOB_LIST):
            e = r["endpoints"][name]
            table.add_row(
                label,
                name,
                f"{e['requests']:,}",
                f"{e['requests_per_s']:,.1f}",
                f"{e['p50_ms']:.1f}",
                f"{e['p99_ms']:.1f}",
                f"{e['max_ms']:.1f}",
                str(e["errors"]),
            )
        a = r["endpoints"]["all"]
        table.add_row(
            label, "all", f"{a['requests']:,}", f"{a['requests_per_s']:,.1f}", "", "", "", str(a["errors"])
        )
    Console(width=160).print(table)
    for r in result["runs"]:
        alone = ", ".join(f"{name} {ms:.1f} ms" for name, ms in r["serial_p50_ms"].items())
        print(f"{r['backend']}: one client alone (median of {SERIAL_SAMPLES}): {alone}")
        for sample in r["error_samples"]:
            print(f"{r['backend']} error: {sample}")


if __name__ == "__main__":
    sys.exit(main())
