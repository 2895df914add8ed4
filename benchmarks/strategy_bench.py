"""Extraction strategies side by side: full backups through ``bulk2`` and ``bulk1``, same emulator.

Two catalog orgs point at one emulated org; each round backs up one with ``extraction_strategy =
"bulk2"`` and the other with ``"bulk1"`` (production ``JobOptions``, records only, no Id sweep),
twice, and prints per run: records, seconds, records/s, API calls (and per million records, from
the emulator's exact per-category counters), Bulk 1.0 batches and Bulk 2.0 jobs used, and the
calls by kind. A first, small comparison for issue 16 (the 2M / 5M benchmark is not this).

    .venv/bin/python -m benchmarks.strategy_bench [--scale 200000] [--profile fast|realistic]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _run(env: Any, org: str, strategy: str) -> dict[str, Any]:
    from engine.jobs.planning import JobOptions

    options = JobOptions(file_bodies=False, id_sweep_every=0, extraction_strategy=strategy)  # type: ignore[arg-type]
    before = env.em.admin("GET", "/limits")
    t0 = time.monotonic()
    res = env.backup(org, full=True, options=options)
    seconds = time.monotonic() - t0
    after = env.em.admin("GET", "/limits")
    kinds = {k: v - before["by_category"].get(k, 0) for k, v in after["by_category"].items()}
    used = {
        k: after["used"].get(k, 0) - before["used"].get(k, 0)
        for k in ("DailyBulkApiBatches", "DailyBulkV2QueryJobs")
    }
    calls = sum(kinds.values())
    return {
        "strategy": strategy, "state": res.state, "records": res.records, "seconds": round(seconds, 1),
        "records_per_s": int(res.records / seconds), "api_calls": calls,
        "calls_per_million": round(calls / max(1, res.records) * 1e6),
        "bulk1_batches": used["DailyBulkApiBatches"], "bulk2_jobs": used["DailyBulkV2QueryJobs"],
        "by_kind": {k: v for k, v in kinds.items() if v},
    }  # fmt: skip


def main() -> None:
    from devkit.backup_env import backup_env

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=200_000)
    parser.add_argument("--profile", default="fast", choices=("fast", "realistic"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sfvault-strategy-") as tmp:
        extra = ["--profile", args.profile] if args.profile != "fast" else None
        with backup_env(Path(tmp), scale=args.scale, extra_args=extra) as env:
            env.add_org("via2")
            env.add_org("via1")
            for org, strategy in (("via2", "bulk2"), ("via1", "bulk1")) * 2:
                print(args.profile, json.dumps(_run(env, org, strategy)), flush=True)


if __name__ == "__main__":
    main()
