"""compare(N, M) and the Data view statistics over real encrypted snapshot chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from engine.diff.compare import StatsFilter, compare, job_stats, object_type
from engine.diff.recovery import RecoveryPoints
from engine.errors import JobNotInCycle, NoPreviousJob, ObjectNotInBackup
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, RandomOrg, new_repository
from tests.helpers.reference_state import reference_state as object_state

ORG = "acme"


def test_compare_equals_the_org_change_log(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(11)
    org.seed_rows(80)
    w = ChainWriter(repo, ORG)
    jobs = [w.commit("full", {"Account": org.full()}).job_id]
    truth = []
    for _ in range(3):
        since = org.now - timedelta(minutes=5)
        truth.append(org.churn(10))
        jobs.append(w.commit("incremental", {"Account": org.incremental(since, sweep=True)}).job_id)
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        for i in range(1, len(jobs)):
            c = compare(rp, jobs[i]) if i == len(jobs) - 1 else compare(rp, jobs[i], jobs[i - 1])
            assert (c.job, c.against) == (jobs[i], jobs[i - 1])
            d = c.objects["Account"]
            t = truth[i - 1]
            assert d.ids("added") == t["added"]
            assert d.ids("removed") == t["removed"]
            assert d.ids("changed") == t["changed"]
            assert (d.added, d.removed, d.changed) == (len(t["added"]), len(t["removed"]), len(t["changed"]))
            # only Name was edited; SystemModstamp-only touches are not changes
            assert set().union(*d.changed_fields().values()) == {"Name"}
            old = {r["Id"]: r for r in rp.table("Account", jobs[i - 1]).to_pylist()}
            new = {r["Id"]: r for r in rp.table("Account", jobs[i]).to_pylist()}
            for rid, f, o, n in d.field_changes():
                assert o == old[rid][f] and n == new[rid][f]
        with_touch = compare(rp, jobs[1], jobs[0], ignore_fields=())
        assert with_touch.objects["Account"].changed > len(truth[0]["changed"])


def test_compare_matches_a_python_diff_of_the_reference_states(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(12)
    org.seed_rows(50)
    w = ChainWriter(repo, ORG)
    jobs = [w.commit("full", {"Account": org.full()}).job_id]
    for n in range(4):
        since = org.now - timedelta(minutes=5)
        org.churn(6)
        jobs.append(w.commit("incremental", {"Account": org.incremental(since, sweep=n == 2)}).job_id)
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        for a in range(len(jobs)):
            for b in range(len(jobs)):
                if a == b:
                    continue
                ref_new = {r["Id"]: r for r in object_state(repo, ORG, "Account", job_id=jobs[a]).to_pylist()}
                ref_old = {r["Id"]: r for r in object_state(repo, ORG, "Account", job_id=jobs[b]).to_pylist()}
                d = compare(rp, jobs[a], jobs[b]).objects["Account"]
                assert d.ids("added") == sorted(set(ref_new) - set(ref_old))
                assert d.ids("removed") == sorted(set(ref_old) - set(ref_new))
                changed = sorted(
                    i
                    for i in set(ref_new) & set(ref_old)
                    if any(ref_new[i][c] != ref_old[i][c] for c in ("Name", "Amount", "Active"))
                )
                assert d.ids("changed") == changed


def test_details_files_and_stats_and_filters(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(13)
    org.seed_rows(40)
    w = ChainWriter(repo, ORG)
    feed = ObjectChange(rows=org.full().rows.select(["Id", "SystemModstamp"]), mode="full")  # type: ignore[union-attr]
    calls = {"rest": 3, "bulk2_jobs_created": 2}
    j1 = w.commit("full", {"Account": org.full(), "AccountFeed": feed}).job_id
    since = org.now
    t = org.churn(5)
    inc = org.incremental(since, sweep=True)
    inc.api_calls = calls
    j2 = w.commit("incremental", {"Account": inc, "AccountFeed": ObjectChange(rows=None)}).job_id
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        files = compare(rp, j2).write_details(tmp_path / "details")
        names = sorted(p.name for p in files)
        assert "Account.ids.csv" in names and "Account.fields.parquet" in names
        ids_csv = pacsv.read_csv(tmp_path / "details" / "Account.ids.csv")
        assert ids_csv.num_rows == len(t["added"]) + len(t["removed"]) + len(t["changed"])
        assert pq.read_table(tmp_path / "details" / "Account.fields.parquet").column_names == [
            "Id",
            "field",
            "old",
            "new",
        ]
        stats = {s.object: s for s in job_stats(rp, j2)}
        a = stats["Account"]
        assert (a.added, a.changed, a.removed) == (len(t["added"]), len(t["changed"]), len(t["removed"]))
        assert a.records == len(org.live) and a.rest_calls == 3 and a.bulk_jobs == 2 and a.backup_bytes > 0
        assert stats["AccountFeed"].type == "feed" and stats["AccountFeed"].changed == 0
        first = {s.object: s for s in job_stats(rp, j1)}
        assert first["Account"].added == first["Account"].records == 40
        only_feed = job_stats(rp, j2, filter=StatsFilter(types=frozenset({"feed"})))
        assert [s.object for s in only_feed] == ["AccountFeed"]
        assert [s.object for s in job_stats(rp, j2, filter=StatsFilter(min_changed=1))] == ["Account"]
        assert job_stats(rp, j2, filter=StatsFilter(max_added=0, min_added=0))[0].object == "AccountFeed"


def test_compare_bad_input(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(14)
    org.seed_rows(5)
    w = ChainWriter(repo, ORG)
    j1 = w.commit("full", {"Account": org.full()}).job_id
    j2 = w.commit("full", {"Account": org.full()}).job_id  # a new cycle
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        with pytest.raises(NoPreviousJob) as e1:
            compare(rp, j2)
        assert e1.value.code == "SFV-709"
        with pytest.raises(JobNotInCycle) as e2:
            compare(rp, j2, j1)
        assert e2.value.code == "SFV-703"
        with pytest.raises(ObjectNotInBackup):
            compare(rp, j1, j1, objects=["Nope"])


def test_object_types() -> None:
    assert [object_type(n) for n in ("Account", "Thing__c", "AccountFeed", "AccountShare", "Attachment")] == [
        "standard",
        "custom",
        "feed",
        "share",
        "files",
    ]


def test_columns_and_objects_that_exist_in_one_job_only(tmp_path: Path) -> None:
    """A column added, removed or retyped between two jobs is compared as text; an object in one of
    the jobs only has every record added (or removed)."""
    ts = pa.timestamp("ms", "UTC")
    at = pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 3, ts)
    ids = ["001000000000001AAA", "001000000000002AAA", "001000000000003AAA"]
    old = pa.table({"Id": ids, "Name": ["a", "b", "c"], "Amount": pa.array([1, 2, 3], pa.int64()),
                    "Gone__c": ["x", "y", "z"], "SystemModstamp": at})  # fmt: skip
    new = pa.table({"Id": [*ids[:2], "001000000000004AAA"], "Name": ["a", "B", "d"],
                    "Amount": ["1", "20", "4"], "New__c": ["p", "q", "r"], "SystemModstamp": at})  # fmt: skip
    leads = pa.table({"Id": ["00Q000000000001AAA"], "SystemModstamp": at[:1]})
    repo = new_repository(tmp_path)
    w = ChainWriter(repo, ORG)
    j1 = w.commit("full", {"Account": ObjectChange(rows=old)}).job_id
    j2 = w.commit("incremental", {"Account": ObjectChange(rows=new, mode="full"),
                                  "Lead": ObjectChange(rows=leads, mode="full")}).job_id  # fmt: skip
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        c = compare(rp, j2, j1)
        a = c.objects["Account"]
        assert (a.columns_added, a.columns_removed) == (["New__c"], ["Gone__c"])
        added = new["Id"][2].as_py()
        assert [a.ids(k) for k in ("added", "removed", "changed")] == [[added], [ids[2]], [ids[1]]]
        assert sorted(a.field_changes()) == [(ids[1], "Amount", "2", "20"), (ids[1], "Name", "b", "B")]
        assert (a.records_old, a.records_new, a.added, a.removed, a.changed) == (3, 3, 1, 1, 1)
        lead = c.objects["Lead"]
        assert (lead.added, lead.records_old, lead.records_new) == (1, 0, 1)
        assert lead.ids("added") == [leads["Id"][0].as_py()]
        assert list(lead.field_changes()) == []
        back = compare(rp, j1, j2).objects["Lead"]  # the older job first: Lead is not in it
        assert (back.removed, back.records_old, back.records_new) == (1, 1, 0)
        assert back.ids("removed") == lead.ids("added")
