"""Emulator throughput: the generator's records/s and Bulk 2.0 result download MB/s (``fast`` profile).

1. Generator: ``generate()`` into an in-memory store, records per second.
2. Downloads: a real emulator process (plain http, ``fast``) with a generated org; one Bulk 2.0
   query job over every column of the biggest objects (Task, Contact), then its whole result as
   one page: one stream (best of 3), four streams at once (per stream and aggregate), and one
   gzip stream (CSV bytes per second after decompression by the client).

    .venv/bin/python -m benchmarks.emulator_bench                # 1M generated, 500k served
    .venv/bin/python -m benchmarks.emulator_bench --tiny         # smoke run (test suite)

Results: a JSON file in ``benchmarks/results/`` and a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
V = "/services/data/v59.0"


def bench_generator(scale: int, seed: int) -> dict[str, Any]:
    from emulator.generator import generate
    from emulator.store import OrgStore

    store = OrgStore()
    try:
        t0 = time.perf_counter()
        counts = generate(store, scale, seed)
        dt = time.perf_counter() - t0
    finally:
        store.close()
    records = sum(counts.values())
    return {"scale": scale, "records": records, "seconds": round(dt, 2), "records_per_s": round(records / dt)}


def _download(client: httpx.Client, url: str, *, gzip: bool = False) -> tuple[int, float]:
    """(CSV bytes, seconds) of one results page read to the end."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    t0 = time.perf_counter()
    size = 0
    inflate = zlib.decompressobj(31) if gzip else None
    with client.stream("GET", url, headers=headers) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw(1 << 20):
            size += len(inflate.decompress(chunk)) if inflate is not None else len(chunk)
    return size, time.perf_counter() - t0


def bench_downloads(scale: int, seed: int, rounds: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from emulator.launcher import start_emulator

    t0 = time.perf_counter()
    em = start_emulator(scale=scale, seed=seed, tls=False, timeout=600)
    startup = time.perf_counter() - t0
    out: dict[str, Any] = {"scale": scale, "startup_s": round(startup, 1)}
    try:
        token = em.token()
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        with httpx.Client(
            base_url=em.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
            trust_env=False,
            limits=limits,
        ) as client:
            jobs = {}
            for obj in ("Task", "Contact"):
                fields = [
                    f["name"]
                    for f in client.get(f"{V}/sobjects/{obj}/describe").json()["fields"]
                    if f["type"] not in ("address", "location", "base64")
                ]
                t1 = time.perf_counter()
                job = client.post(
                    f"{V}/jobs/query",
                    json={"operation": "query", "query": f"SELECT {', '.join(fields)} FROM {obj}"},
                ).json()
                info = client.get(f"{V}/jobs/query/{job['id']}").json()
                while info["state"] not in ("JobComplete", "Failed", "Aborted"):  # polled as clients do
                    time.sleep(0.05)
                    info = client.get(f"{V}/jobs/query/{job['id']}").json()
                assert info["state"] == "JobComplete", info
                jobs[obj] = (job["id"], info["numberRecordsProcessed"], time.perf_counter() - t1, len(fields))
            obj = max(jobs, key=lambda k: jobs[k][1] * jobs[k][3])
            job_id, rows, job_s, ncols = jobs[obj]
            url = f"{V}/jobs/query/{job_id}/results?maxRecords=100000000"
            out.update({"object": obj, "rows": rows, "columns": ncols, "job_seconds": round(job_s, 2)})
            singles = [_download(client, url) for _ in range(rounds)]
            size = singles[0][0]
            best = min(dt for _, dt in singles)
            out["csv_mb"] = round(size / 1e6, 1)
            out["one_stream_mb_s"] = round(size / best / 1e6, 1)
            out["one_stream_all_mb_s"] = [round(size / dt / 1e6, 1) for _, dt in singles]

            results: list[tuple[int, float]] = []
            lock = threading.Lock()

            def worker() -> None:
                r = _download(client, url)
                with lock:
                    results.append(r)

            threads = [threading.Thread(target=worker) for _ in range(4)]
            t2 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.perf_counter() - t2
            out["four_streams_each_mb_s"] = [round(s / dt / 1e6, 1) for s, dt in results]
            out["four_streams_total_mb_s"] = round(sum(s for s, _ in results) / wall / 1e6, 1)
            gz_size, gz_dt = _download(client, url, gzip=True)
            assert gz_size == size
            out["gzip_one_stream_mb_s"] = round(gz_size / gz_dt / 1e6, 1)
    finally:
        em.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen-scale", type=int, default=1_000_000, help="records for the generator run")
    parser.add_argument("--scale", type=int, default=500_000, help="records of the served org")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="single-stream downloads (best is reported)")
    parser.add_argument("--tiny", action="store_true", help="smoke run at a tiny scale")
    args = parser.parse_args(argv)
    if args.tiny:
        args.gen_scale, args.scale, args.rounds = 20_000, 5_000, 1

    gen = bench_generator(args.gen_scale, args.seed)
    dl = bench_downloads(args.scale, args.seed, args.rounds)
    result = {
        "scenario": "emulator",
        "tiny": args.tiny,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "profile": "fast",
        "generator": gen,
        "downloads": dl,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"emulator_bench{'-tiny' if args.tiny else ''}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"emulator benchmark (profile fast{', tiny' if args.tiny else ''})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "generator", f"{gen['records']:,} records in {gen['seconds']} s = {gen['records_per_s']:,}/s"
    )
    table.add_row("served org", f"scale {dl['scale']:,}, ready in {dl['startup_s']} s")
    table.add_row(
        "bulk job",
        f"{dl['object']}: {dl['rows']:,} rows x {dl['columns']} columns, {dl['csv_mb']} MB CSV, "
        f"complete in {dl['job_seconds']} s",
    )
    table.add_row("1 stream", f"{dl['one_stream_mb_s']} MB/s (runs: {dl['one_stream_all_mb_s']})")
    table.add_row("4 streams, each", f"{dl['four_streams_each_mb_s']} MB/s")
    table.add_row("4 streams, total", f"{dl['four_streams_total_mb_s']} MB/s")
    table.add_row("1 gzip stream", f"{dl['gzip_one_stream_mb_s']} MB/s of CSV")
    Console().print(table)
    print(f"results: {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
