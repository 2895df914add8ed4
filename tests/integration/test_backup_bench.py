"""Smoke run of the backup benchmark at tiny scale (fast profile), so the harness never rots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator


def test_backup_benchmark_tiny(tmp_path: Path) -> None:
    from benchmarks.backup_bench import FIGURE_RUNS, main

    assert main(["--tiny", "--profiles", "fast", "--results-dir", str(tmp_path)]) == 0
    [path] = list(tmp_path.glob("backup_bench-tiny-*.json"))
    result = json.loads(path.read_text())
    [run] = result["runs"]
    assert run["sfvault_full"]["state"] == "succeeded"
    assert run["sfvault_full"]["records"] >= run["baseline_simple_salesforce"]["records"] > 0
    assert run["sfvault_incremental"]["state"] == "succeeded"
    # the figure's runs repeat one job from one restored state: same outcome every time
    runs = run["sfvault_incremental_runs"]
    assert len(runs) == FIGURE_RUNS and run["sfvault_incremental"] in runs
    records = run["sfvault_incremental"]["records"]
    assert records > 0 and {(r["state"], r["records"]) for r in runs} == {("succeeded", records)}
    # result_bytes counts Bulk result files only: the tiny org's objects may all be read through
    # REST pages (small objects of a full, decision 0019), so only the wire bytes must be there
    assert run["sfvault_full"]["bytes_received"] > 0
    assert run["incremental_mean_over_sweep_cycle_vs_full_time"] > 0
    assert all(v < 1024**3 for v in run["peak_rss_per_worker"].values())
