"""The one definition of "API calls" (decision 0027): :func:`engine.model.api_calls_of`."""

from __future__ import annotations

import pickle

from engine.extract.usage import ApiUsage
from engine.model import ApiCalls, JobUsage, api_calls_of


def test_calls_by_api_leave_out_logins_refusals_and_counters_that_are_not_requests() -> None:
    calls = {
        "rest": 5, "blob": 7, "bulk2_job": 9, "bulk2_results_page": 2, "bulk1_job": 4, "bulk1_results": 3,
        "login": 2, "versions": 1, "refused": 6, "bulk1_batches": 8,
        "bulk2_jobs_created": 3, "bulk2_pages": 2,  # the catalog's copies in a manifest entry
    }  # fmt: skip
    got = api_calls_of(calls)
    assert got == ApiCalls(rest=12, bulk2=11, bulk1=7, bulk1_batches=8)
    assert got.total == 30  # batches are DailyBulkApiBatches, not calls
    assert api_calls_of({"calls": calls}) == got  # a usage snapshot reads the same
    assert JobUsage(calls=calls).calls_by_api() == got


def test_the_usage_counter_and_its_snapshot_agree_with_the_definition() -> None:
    u = ApiUsage()
    for kind, n in (("rest", 3), ("login", 1), ("blob", 2), ("bulk1_job", 4), ("refused", 1)):
        u.count(kind, n)  # type: ignore[arg-type]
    u.add_batches(2)
    assert u.api_calls == u.snapshot()["api_calls"] == api_calls_of(u.snapshot()).total == 9


def test_merged_usage_keeps_the_newest_allowance_and_derived_counters_report_it() -> None:
    parent, late, early = ApiUsage(), ApiUsage(), ApiUsage()
    late.observe_header("api-usage=120/1000")
    early.observe_header("api-usage=80/1000")
    total = ApiUsage()
    total.merge(late)
    total.merge(early)  # merged last, but older
    assert (total.org_used, total.remaining) == (120, 880)
    child = ApiUsage(parent=parent)
    child.observe_header("api-usage=130/1000")
    assert parent.org_used == 130
    copy = pickle.loads(pickle.dumps(child))
    assert copy.parent is None and copy.org_used == 130
