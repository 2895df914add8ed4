"""Extraction strategies side by side: full backups through ``bulk2``, ``bulk1`` and ``auto``, same emulator.

One catalog org per strategy points at one emulated org; each round backs up every org once with
its ``extraction_strategy`` (production ``JobOptions``, records only, no Id sweep), ``--rounds``
times, and prints per run: records, seconds, records/s, API calls (and per million records, from
the emulator's exact per-category counters), Bulk 1.0 batches and Bulk 2.0 jobs used, the calls
by kind, the strategy each object went through (``auto``'s choices) and the machine's load
(``os.getloadavg``: the figures of one run compare with each other, not across runs), and the
peak RSS of each Dask worker during the run (the workers restart before each run).
``--big-object-rows N`` gives ``--big-object`` (Task) N records on top of ``--scale``: where
PK chunking should pay.

    .venv/bin/python -m benchmarks.strategy_bench [--scale 200000] [--profile fast|realistic]
        [--strategies bulk2,bulk1,auto] [--big-object Task --big-object-rows 500000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _run(env: Any, org: str, strategy: str) -> dict[str, Any]:
    from benchmarks.backup_bench import peak_rss
    from engine.jobs.planning import JobOptions

    env.dask.restart()  # fresh workers: their peak RSS is this run's

    options = JobOptions(file_bodies=False, id_sweep_every=0, extraction_strategy=strategy)  # type: ignore[arg-type]
    before = env.em.admin("GET", "/limits")
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    res = env.backup(org, full=True, options=options)
    seconds = time.monotonic() - t0
    rss = peak_rss(env.dask)
    after = env.em.admin("GET", "/limits")
    kinds = {k: v - before["by_category"].get(k, 0) for k, v in after["by_category"].items()}
    used = {
        k: after["used"].get(k, 0) - before["used"].get(k, 0)
        for k in ("DailyBulkApiBatches", "DailyBulkV2QueryJobs")
    }
    calls = sum(kinds.values())
    paths = Counter(f"{x.path}:{x.reason}" for x in (r.extraction for r in res.objects.values()) if x)
    return {
        "strategy": strategy, "state": res.state, "records": res.records, "seconds": round(seconds, 1),
        "records_per_s": int(res.records / seconds), "api_calls": calls,
        "calls_per_million": round(calls / max(1, res.records) * 1e6),
        "bulk1_batches": used["DailyBulkApiBatches"], "bulk2_jobs": used["DailyBulkV2QueryJobs"],
        "paths": dict(paths), "load_1m_before": round(load, 2), "load_1m_after": round(os.getloadavg()[0], 2),
        "by_kind": {k: v for k, v in kinds.items() if v},
        "peak_rss_mib_per_worker": sorted(round(v / 2**20) for v in rss.values()),
    }  # fmt: skip


def main() -> None:
    from devkit.backup_env import backup_env

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000)
    parser.add_argument("--profile", default="fast", choices=("fast", "realistic"))
    parser.add_argument("--strategies", default="bulk2,bulk1,auto")
    parser.add_argument("--big-object", default="Task")
    parser.add_argument("--big-object-rows", type=int, default=0, help="0: as --scale")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    extra = ["--profile", args.profile] if args.profile != "fast" else []
    if args.big_object_rows > 0:
        extra += ["--object-rows", f"{args.big_object}={args.big_object_rows}"]
    with (
        tempfile.TemporaryDirectory(prefix="sfvault-strategy-") as tmp,
        backup_env(Path(tmp), scale=args.scale, extra_args=extra or None) as env,
    ):
        for s in strategies:
            env.add_org(f"via-{s}")
        for _ in range(args.rounds):
            for s in strategies:
                print(args.profile, json.dumps(_run(env, f"via-{s}", s)), flush=True)


if __name__ == "__main__":
    main()
