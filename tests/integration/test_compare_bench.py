"""Smoke run of benchmarks/compare_bench.py at tiny scale, so the harness never rots."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import compare_bench


def test_compare_bench_tiny(tmp_path: Path) -> None:
    result = compare_bench.main(["--tiny", "--out", str(tmp_path)])
    setup, found = result["setup"], result["compare"]["found"]
    assert (found["added"], found["changed"], found["removed"]) == (
        setup["inserted"],
        setup["changed"],
        setup["deleted"],
    )
    assert found["records_new"] == setup["records"] + setup["inserted"] - setup["deleted"]
    assert result["compare"]["scan_s"] > 0 and result["compare"]["ratio"] > 0 and result["peak_rss"] > 0
    for fmt in ("mysql", "csv"):
        assert result["exports"][fmt]["bytes"] > 0 and result["exports"][fmt]["zip"]["mb_per_s"] > 0
    files = list(tmp_path.glob("compare_bench-tiny-*.json"))
    assert (
        len(files) == 1 and json.loads(files[0].read_text())["compare"]["ratio"] == result["compare"]["ratio"]
    )
