"""Small incremental windows go through REST; task clients share one pool and keep their own counters."""

from __future__ import annotations

from dataclasses import replace

import httpx
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.extract.client import SalesforceClient
from engine.extract.usage import ApiUsage
from engine.jobs.planning import JobOptions, partition_rows
from tests.unit.test_extract_client import GRANT, OPTS, Script


def test_rest_limit_is_capped_by_a_quarter_partition() -> None:
    assert JobOptions().rest_limit == 2_000
    assert JobOptions(rest_max_rows=10_000).rest_limit == 10_000
    assert JobOptions(target_rows=4000, rest_max_rows=10_000).rest_limit == 1000
    assert JobOptions(rest_max_rows=0).rest_limit == 0


@given(
    job_rows=st.integers(min_value=0, max_value=10**10),
    target=st.integers(min_value=1, max_value=10**7),
    smallest=st.integers(min_value=1, max_value=10**7),
    spread=st.integers(min_value=1, max_value=8),
    cap=st.integers(min_value=1, max_value=64),
)
def test_partition_rows_stays_within_its_bounds(
    job_rows: int, target: int, smallest: int, spread: int, cap: int
) -> None:
    o = JobOptions(target_rows=target, min_partition_rows=smallest, partition_spread=spread,
                   partition_jobs=cap)  # fmt: skip
    rows = partition_rows(job_rows, o)
    assert 1 <= rows <= target, "never above the largest partition"
    assert rows >= min(target, smallest), "never below the smallest one (unless the largest is smaller)"
    if min(target, smallest) < rows < target:
        # strictly between the bounds: exactly enough partitions for spread x cap
        assert -(-job_rows // rows) <= spread * cap


def test_partition_rows_for_the_orgs_the_issue_names() -> None:
    o = JobOptions()
    assert partition_rows(2_000_000, o) == 125_000, "a 2M-record org: 16 partitions (decision 0019)"
    assert partition_rows(100_000_000, o) == 250_000, "a large org: the 250k cap"
    assert partition_rows(40_000, o) == 50_000, "an incremental window: one partition per object"


def test_the_open_jobs_cap_does_not_cut_partitions_and_holds_a_2m_full() -> None:
    """Decision 0047: the cap on open Bulk jobs no longer sets the partition count, and it holds
    every job of a 2M-record full (16 ranges and the small objects' 7 jobs, measured: 23), so its
    largest ranges, cut last, are not created only once earlier jobs were read."""
    o = JobOptions()
    assert partition_rows(2_000_000, o) == partition_rows(2_000_000, replace(o, max_concurrent_bulk_jobs=8))
    assert -(-2_000_000 // partition_rows(2_000_000, o)) + 7 <= o.max_concurrent_bulk_jobs


def test_derived_clients_share_the_pool_and_count_their_own_calls() -> None:
    ok = httpx.Response(200, json={"ok": 1}, headers={"Sforce-Limit-Info": "api-usage=5/100"})
    script = Script(ok, ok, ok)
    base = SalesforceClient(
        GRANT, OPTS, clock=FrozenClock(), sleep=lambda s: None, transport=httpx.MockTransport(script)
    )
    a = base.derive(usage=ApiUsage())
    b = base.derive(usage=ApiUsage(), timeout_seconds=3.0)
    assert a.http is base.http and b.http is base.http and a.session is base.session
    assert a.get_json("limits") == {"ok": 1}
    assert b.get_json("limits") == {"ok": 1}
    assert a.usage.calls["rest"] == 1 and b.usage.calls["rest"] == 1 and "rest" not in base.usage.calls
    a.close()
    b.close()
    assert not base.http.is_closed, "closing a derived client leaves the shared pool open"
    assert base.get_json("limits") == {"ok": 1}
    assert script.tokens == 1, "one login for all of them"
    base.close()
    assert base.http.is_closed
