"""Smoke run of the API load benchmark at tiny scale (SQLite, a real `sfvault serve`), so the
harness never rots; the full run (200 orgs, 10,000 jobs, SQLite and PostgreSQL) is by hand."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.api_load_bench import JOB_LIST, TILES, main


def test_api_load_benchmark_tiny(tmp_path: Path) -> None:
    assert main(["--tiny", "--results-dir", str(tmp_path)]) == 0
    [path] = list(tmp_path.glob("api_load_bench-tiny-*.json"))
    result = json.loads(path.read_text())
    [run] = result["runs"]
    assert (run["backend"], run["orgs"], run["jobs"], run["clients"]) == ("sqlite", 5, 50, 5)
    for name in (TILES, JOB_LIST):
        e = run["endpoints"][name]
        assert e["requests"] > 0 and e["errors"] == 0, e
        assert 0 < e["p50_ms"] <= e["p99_ms"] <= e["max_ms"]
        assert run["serial_p50_ms"][name] > 0
