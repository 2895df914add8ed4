"""Smoke run of the continuous data protection RPO benchmark at tiny scale, so the harness never rots."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.emulator


def test_cdp_rpo_benchmark_tiny() -> None:
    from benchmarks.cdp_rpo_bench import run

    res = run(changes=40, writers=2, segment_events=10, segment_age=0.5, scale=1_000)
    assert res["durable"] == 40  # every change reached a committed segment
    assert 0 < res["p50_ms"] <= res["p99_ms"] <= res["max_ms"]
