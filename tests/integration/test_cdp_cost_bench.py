"""Smoke run of the continuous data protection API-cost benchmark at tiny scale: the harness never
rots, and its claim holds on every run: change events and the recovery point over them cost no
API call the org counts (its base snapshot costs what that backup cost)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.emulator


def test_cdp_cost_benchmark_tiny() -> None:
    from benchmarks.cdp_cost_bench import run

    [res] = run([500], scale=1_000, percent=30)
    assert not res["subscriber_errors"], res
    assert res["events"] >= 500 and res["events_in_recovery_point"] == res["events"], res
    assert res["api_calls_base_backup"] > 0, res
    assert res["api_calls_events"] == 0 and res["api_calls_recovery_point"] == 0, res
