"""Out-of-core recovery points (engine.diff.recovery) equal the independent in-memory reader
(tests/helpers/reference_state.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from engine.diff.recovery import RecoveryPoints, Snapshots, connect
from engine.errors import ObjectNotInBackup, ScratchFull, UnknownJob, UnknownOrg
from engine.jobs import planning
from engine.model import Manifest
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, RandomOrg, new_repository
from tests.helpers.reference_state import reference_state as object_state

ORG = "acme"


def _same(a: pa.Table | None, b: pa.Table) -> None:
    assert a is not None
    a = a.select(b.column_names).cast(b.schema)
    assert a.num_rows == b.num_rows
    assert a.to_pylist() == b.to_pylist()


def _build(tmp_path: Path, seed: int, jobs: int = 6, sweep_every: int = 3) -> tuple:
    repo = new_repository(tmp_path)
    org = RandomOrg(seed)
    org.seed_rows(60)
    w = ChainWriter(repo, ORG)
    manifests: list[Manifest] = [w.commit("full", {"Account": org.full()})]
    truths = [org.truth()]
    swept = [True]
    for n in range(1, jobs):
        since = org.now - timedelta(minutes=5)  # a lagged window re-reads the last job's rows
        org.churn(8)
        sweep = n % sweep_every == 0
        manifests.append(w.commit("incremental", {"Account": org.incremental(since, sweep=sweep)}))
        truths.append(org.truth())
        swept.append(sweep)
    return repo, manifests, truths, swept


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_equals_the_in_memory_reference_at_every_job(tmp_path: Path, seed: int) -> None:
    repo, manifests, truths, swept = _build(tmp_path, seed)
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "counts") as rp:  # counts without the rows
        for m in manifests:
            ref = object_state(repo, ORG, "Account", job_id=m.job_id)
            assert ref is not None and rp.count("Account", m.job_id) == ref.num_rows, m.job_id
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "scratch", memory_limit="256MB", threads=2) as rp:
        for i, m in enumerate(manifests):
            ref = object_state(repo, ORG, "Account", job_id=m.job_id)
            ours = rp.table("Account", m.job_id)
            assert ref is not None
            assert ours.schema.equals(ref.schema)
            assert ours.equals(ref), m.job_id
            if swept[i]:  # after a sweep the snapshot equals the org exactly
                _same(ours, truths[i])


def test_undelete_sweep_new_field_refull_and_other_cycle(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    w = ChainWriter(repo, ORG)
    ts = pa.timestamp("ms", "UTC")
    org = RandomOrg(7)
    org.seed_rows(10)
    w.commit("full", {"Account": org.full(), "Contact": ObjectChange(failed=True)})
    # Contact first captured in full inside an incremental; a new column appears on Account
    since = org.now
    org.churn(3)
    inc = org.incremental(since)
    assert inc.rows is not None
    inc.rows = inc.rows.append_column("Region__c", pa.array(["EU"] * inc.rows.num_rows))
    contacts = pa.table({"Id": ["003A", "003B"], "SystemModstamp": pa.array([org.now, org.now], ts)})
    w.commit("incremental", {"Account": inc, "Contact": ObjectChange(rows=contacts, mode="full")})
    # a deletion and an undelete at the same timestamp: the deletion wins the tie
    same = pa.table({"Id": ["003A"], "SystemModstamp": pa.array([org.now], ts)})
    w.commit("incremental", {"Contact": ObjectChange(rows=same, deletions=same)})
    # a sweep without any Ids: every Id older than the sweep is hard-deleted
    w.commit("incremental", {"Contact": ObjectChange(rows=contacts.slice(0, 0), sweep=[])})
    last_first = w.commit("full", {"Account": org.full()})
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "c") as rp:  # counts without the rows
        for m in rp.snapshots.manifests:
            for obj in ("Account", "Contact"):
                ref = object_state(repo, ORG, obj, job_id=m.job_id)
                if ref is not None:
                    assert rp.count(obj, m.job_id) == ref.num_rows, (obj, m.job_id)
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        for m in rp.snapshots.manifests:
            for obj in ("Account", "Contact"):
                ref = object_state(repo, ORG, obj, job_id=m.job_id)
                if ref is None:
                    with pytest.raises(ObjectNotInBackup):
                        rp.table(obj, m.job_id)
                    continue
                ours = rp.table(obj, m.job_id)
                assert ours.equals(ref), (obj, m.job_id)
        assert rp.snapshots.chain(last_first.job_id) == [rp.snapshots.job(last_first.job_id)]
        assert "Region__c" in rp.schema("Account", "job-0002").names
        assert rp.table("Contact", "job-0003")["Id"].to_pylist() == ["003B"]
        assert rp.count("Contact", "job-0004") == 0


def test_bad_input_has_specific_errors(tmp_path: Path) -> None:
    repo, manifests, _, _ = _build(tmp_path, 5, jobs=2)
    with pytest.raises(UnknownOrg) as e1:
        Snapshots.load(repo, "nobody")
    assert e1.value.code == "SFV-701"
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        with pytest.raises(UnknownJob) as e2:
            rp.table("Account", "job-9999")
        assert e2.value.code == "SFV-702"
        with pytest.raises(ObjectNotInBackup) as e3:
            rp.table("Nope__c", manifests[-1].job_id)
        assert e3.value.code == "SFV-704"
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s2", max_scratch_bytes=100) as rp:
        with pytest.raises(ScratchFull) as e4:
            rp.table("Account")
        assert e4.value.code == "SFV-705"


def test_scratch_is_removed_and_duckdb_is_offline(tmp_path: Path) -> None:
    repo, _, _, _ = _build(tmp_path, 6, jobs=3)
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        rp.table("Account")
        folder = rp.scratch.path
        assert any(folder.glob("chunks/*.parquet"))
        settings = dict(rp.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions', 'threads', 'memory_limit')"
        ).fetchall())  # fmt: skip
        assert settings["autoinstall_known_extensions"] == "false"
        assert settings["autoload_known_extensions"] == "false"
        assert settings["threads"] == "2"
    assert not folder.exists()
    assert connect  # the connection factory is public for compare/export


def test_chain_helpers_mirror_engine_jobs(tmp_path: Path) -> None:
    from engine.diff import recovery

    _repo, manifests, _, _ = _build(tmp_path, 8, jobs=3)
    assert recovery.ordered(reversed(manifests)) == planning.ordered(manifests)
    for m in manifests:
        assert recovery.captured(m, "Account") == planning.captured(m, "Account")
        assert recovery.object_mode(m, "Account") == planning.object_mode(m, "Account")
    from engine.jobs.tasks import BLOB_SUFFIX, IDS_SUFFIX

    assert recovery.IDS_SUFFIX == IDS_SUFFIX
    assert recovery.BLOB_SUFFIX == BLOB_SUFFIX


def test_as_of_names_the_job_each_object_is_as_of(tmp_path: Path) -> None:
    """Issue 14 defect 5: an object a job did not capture is as of the newest earlier job of the
    cycle that did (failed there, or not included), or absent; a new cycle starts over."""
    repo = new_repository(tmp_path)
    org = RandomOrg(3)
    org.seed_rows(6)
    w = ChainWriter(repo, ORG)
    full = w.commit("full", {"Account": org.full(), "Lead": ObjectChange(failed=True)}).job_id
    failed = ObjectChange(failed=True)
    inc = w.commit("incremental", {"Account": failed, "Lead": failed}).job_id
    scoped = w.commit("incremental", {"Lead": org.full()}).job_id  # Account not included, Lead in full
    snaps = Snapshots.load(repo, ORG)
    as_of = {a.object: (a.as_of, a.as_of_job, a.error_code) for a in snaps.as_of(inc)}
    assert as_of == {"Account": ("earlier_job", full, "SFV-404"), "Lead": ("absent", None, "SFV-404")}
    as_of = {a.object: (a.as_of, a.as_of_job, a.error_code) for a in snaps.as_of(scoped)}
    assert as_of == {"Account": ("earlier_job", full, None), "Lead": ("this_job", scoped, None)}
    assert [(a.object, a.as_of) for a in snaps.as_of(full)] == [("Account", "this_job"), ("Lead", "absent")]
    assert [a.object for a in snaps.as_of(inc, ["Account"])] == ["Account"]
    second = w.commit("full", {"Lead": org.full()}).job_id  # a new cycle: Account is not in it
    assert [(a.object, a.as_of) for a in Snapshots.load(repo, ORG).as_of(second)] == [("Lead", "this_job")]
