"""The ``auto`` extraction strategy's choice per object (pure), and its place in the job record.

Rules (``engine.jobs.strategy``): Bulk-unsupported objects go through REST; small ones too; a
configured ``bulk2``/``bulk1`` is kept; ``auto`` keeps incrementals on Bulk API 2.0 (PK chunking
chunks the whole table whatever the filter), reads a large object of a full with one PK-chunked
Bulk API 1.0 job, and the rest with Bulk API 2.0 Id ranges. The choice and the objects scope left
out are written in the manifest and read back the same (decision 0028).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli.jobs import _manifest_lines
from engine.extract.model import ObjectSpec
from engine.extract.scope import ScopeRules, select_objects
from engine.jobs.discover import not_backed_up
from engine.jobs.strategy import choose_extraction
from engine.model import ExtractionChoice, JobRecord, ObjectEntry, ObjectSkipped

BIG = 1_000_000


def _choose(**kw: Any) -> ExtractionChoice:
    args: dict[str, Any] = dict(
        strategy="auto", bulk_capable=True, full=True, rows=10_000, rest_limit=2_000, pk_chunking_min_rows=BIG
    )
    return choose_extraction(**(args | kw))


def test_auto_decides_by_capability_size_and_mode() -> None:
    assert _choose(bulk_capable=False, rows=5 * BIG) == ExtractionChoice("rest", "bulk_unsupported", 5 * BIG)
    assert _choose(rows=2_000) == ExtractionChoice("rest", "small", 2_000)
    assert _choose(rows=0) == ExtractionChoice("rest", "small", 0)
    assert _choose(rows=10_000) == ExtractionChoice("bulk2", "id_ranges", 10_000)
    assert _choose(rows=BIG - 1) == ExtractionChoice("bulk2", "id_ranges", BIG - 1)
    assert _choose(rows=BIG) == ExtractionChoice("bulk1", "pk_chunking", BIG)
    assert _choose(rows=5 * BIG, full=False) == ExtractionChoice("bulk2", "incremental_window", 5 * BIG)
    assert _choose(rows=None) == ExtractionChoice("bulk2", "id_ranges", None)
    assert _choose(rows=100, rest_limit=0) == ExtractionChoice("bulk2", "id_ranges", 100)


@pytest.mark.parametrize("strategy", ["bulk2", "bulk1"])
def test_a_configured_strategy_is_kept_for_bulk_reads(strategy: str) -> None:
    assert _choose(strategy=strategy, rows=5 * BIG) == ExtractionChoice(strategy, "configured", 5 * BIG)  # type: ignore[arg-type]
    assert _choose(strategy=strategy, rows=10).path == "rest"
    assert _choose(strategy=strategy, bulk_capable=False).reason == "bulk_unsupported"


@given(
    strategy=st.sampled_from(["bulk2", "bulk1", "auto"]), capable=st.booleans(), full=st.booleans(),
    rows=st.none() | st.integers(0, 10**8), rest_limit=st.integers(0, 5_000), pk=st.integers(1, 10**7),
)  # fmt: skip
def test_the_choice_never_sends_an_unsupported_object_to_bulk_nor_chunks_a_window(
    strategy: Any, capable: bool, full: bool, rows: int | None, rest_limit: int, pk: int
) -> None:
    c = choose_extraction(
        strategy=strategy, bulk_capable=capable, full=full, rows=rows, rest_limit=rest_limit,
        pk_chunking_min_rows=pk,
    )  # fmt: skip
    assert c.rows == rows
    if not capable:
        assert c.path == "rest"
    if c.reason == "pk_chunking":
        assert strategy == "auto" and full and rows is not None and rows >= pk
    if strategy == "bulk2":
        assert c.path != "bulk1"
    assert ExtractionChoice.from_dict(c.to_dict()) == c


def test_the_choice_and_the_objects_left_out_round_trip_through_the_job_record() -> None:
    entry = ObjectEntry(rows=3, extraction=ExtractionChoice("bulk1", "pk_chunking", 3))
    assert ObjectEntry.from_dict(entry.to_dict()) == entry
    assert "extraction" not in ObjectEntry(rows=3).to_dict()  # older readers see the same document
    rec = JobRecord(not_backed_up=(ObjectSkipped("AccountChangeEvent", "event", "change or platform event"),))
    assert JobRecord.from_dict(rec.to_dict()) == rec
    assert "not_backed_up" not in JobRecord().to_dict()
    with pytest.raises(ValueError):
        ExtractionChoice.from_dict({"path": "bulk3", "reason": "configured"})
    with pytest.raises(ValueError):
        ObjectSkipped.from_dict({"name": "X", "reason": "because"})


def test_every_object_scope_leaves_out_has_a_typed_reason() -> None:
    specs = [
        ObjectSpec("Account"),
        ObjectSpec("AccountChangeEvent", associate_entity_type="ChangeEvent"),
        ObjectSpec("AccountFeed", associate_entity_type="Feed"),
        ObjectSpec("Hidden__c", queryable=False),
        ObjectSpec("NoRetrieve__c", retrieveable=False),
        ObjectSpec("OpenActivity"),
        ObjectSpec("Alert__e"),
    ]
    decisions = select_objects(specs, ScopeRules())
    out = {o.name: o.reason for o in not_backed_up(decisions)}
    assert out == {
        "AccountChangeEvent": "event", "AccountFeed": "feed_off", "Hidden__c": "not_queryable",
        "NoRetrieve__c": "not_retrieveable", "OpenActivity": "query_restricted", "Alert__e": "event",
    }  # fmt: skip
    # an object-scoped job does not list the objects it was not asked for
    only = select_objects(specs, ScopeRules(only=frozenset({"Account"})))
    assert not_backed_up(only) == ()


def test_job_show_lines_name_the_path_reason_and_the_objects_left_out() -> None:
    from datetime import UTC, datetime

    from engine.model import Manifest

    m = Manifest(
        org="o", job_id="j", created_at=datetime(2026, 1, 1, tzinfo=UTC), kind="full", cycle_id="j",
        objects={"Task": ObjectEntry(rows=5, extraction=ExtractionChoice("bulk1", "pk_chunking", 1_200_000))},
        job=JobRecord(not_backed_up=(ObjectSkipped("Hidden__c", "not_queryable", "not queryable"),)),
    )  # fmt: skip
    assert _manifest_lines(m) == [
        "read through bulk1 (pk_chunking, 1,200,000 rows): Task",
        "1 object(s) of the org not backed up:",
        "  Hidden__c: not_queryable (not queryable)",
    ]
