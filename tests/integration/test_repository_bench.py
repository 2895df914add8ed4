"""Smoke run of benchmarks/seal_bench.py at tiny scale, so the harness never rots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import seal_bench


@pytest.mark.azurite
def test_seal_bench_tiny(tmp_path: Path) -> None:
    result = seal_bench.main(["--tiny", "--out", str(tmp_path)])
    assert result["sealed"]["arrow_bytes"] == result["plain"]["arrow_bytes"] > 0
    assert result["sealed"]["chunks"] >= 2 and result["ratio"] > 0
    assert result["azurite"]["raw_upload_mb_per_s"] > 0 and result["azurite"]["sealed_download_mb_per_s"] > 0
    files = list(tmp_path.glob("seal_bench-tiny-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["ratio"] == result["ratio"]
