"""Prune never removes the newest good copy of an object, and its dry run removes and logs nothing
(issue 15, findings 3 and 15). Memory backend, real repository code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import structlog

from engine.model import Manifest, ObjectEntry, ObjectError
from engine.sink.backends.memory import MemoryBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.prune import prune
from engine.sink.repository import Repository

ORG = "00D000000000011AAA"
OBJECTS = [f"Obj{i:02d}__c" for i in range(24)]
DAY = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(MemoryBackend(), LocalKeyFile.create(tmp_path / "k.key"))


def _rows(n: int, start: int) -> pa.Table:
    return pa.table({"Id": [f"a01{i:015d}" for i in range(start, start + n)], "V": list(range(n))})


def _full(repo: Repository, job: str, ok: list[str], failed: list[str], at: datetime) -> Manifest:
    objects = {o: ObjectEntry(chunks=[repo.write_chunk(_rows(3, i * 100 + hash(job) % 50), o)], rows=3)
               for i, o in enumerate(ok)}  # fmt: skip
    objects |= {o: ObjectEntry(errors=[ObjectError("SFV-409", "failed")]) for o in failed}
    m = Manifest(org=ORG, job_id=job, created_at=at, kind="full", cycle_id=job, objects=objects)
    repo.commit(m)
    return m


def test_prune_keeps_the_previous_cycle_when_the_new_full_lacks_its_objects(repo: Repository) -> None:
    """The issue's case: a full where 23 of 24 objects failed started a new cycle, and
    ``prune --keep-cycles 1`` then removed the previous cycle's data of those 23 objects."""
    _full(repo, "j1", OBJECTS, [], DAY)
    _full(repo, "j2", OBJECTS[:1], OBJECTS[1:], DAY + timedelta(days=400))
    report = prune(repo, keep_cycles=1)
    assert [s.job_id for s in repo.snapshots()] == ["j1", "j2"]
    assert report.snapshots_removed == []
    assert report.kept_for_last_copy == [f"{ORG}/j1"]
    for o in OBJECTS:  # every object still reads back
        entry = repo.load_manifest(ORG, "j1").objects[o]
        assert repo.read_chunk(entry.chunks[0]).num_rows == 3


def test_prune_removes_a_cycle_once_a_newer_one_holds_every_object(repo: Repository) -> None:
    _full(repo, "j1", OBJECTS, [], DAY)
    _full(repo, "j2", OBJECTS[:1], OBJECTS[1:], DAY + timedelta(days=400))
    _full(repo, "j3", OBJECTS, [], DAY + timedelta(days=800))
    report = prune(repo, keep_cycles=1)
    assert [s.job_id for s in repo.snapshots()] == ["j3"]
    assert {s.job_id for s in report.snapshots_removed} == {"j1", "j2"}


def test_the_dry_run_lists_per_object_and_neither_removes_nor_logs_removing(repo: Repository) -> None:
    _full(repo, "j1", OBJECTS[:2], [], DAY)
    _full(repo, "j2", OBJECTS[:2], [], DAY + timedelta(days=400))
    with structlog.testing.capture_logs() as logs:
        report = prune(repo, keep_cycles=1, dry_run=True)
    assert not [e for e in logs if "removing" in e["event"]], logs
    assert [s.job_id for s in repo.snapshots()] == ["j1", "j2"]
    assert report.removed_by_object == {f"{ORG}/{OBJECTS[0]}": ["j1"], f"{ORG}/{OBJECTS[1]}": ["j1"]}


def test_a_pruned_job_is_refused_by_name_not_as_unknown(repo: Repository) -> None:
    """Issue 15, finding 15: comparing a pruned job gave SFV-702 ("no committed job") with a fix
    naming a command that lists no jobs; it is now SFV-714, naming prune and a job that works."""
    from engine.diff.recovery import Snapshots
    from engine.errors import JobPruned, UnknownJob

    _full(repo, "j1", OBJECTS[:2], [], DAY)
    _full(repo, "j2", OBJECTS[:2], [], DAY + timedelta(days=400))
    prune(repo, keep_cycles=1)
    snaps = Snapshots.load(repo, ORG)
    with pytest.raises(JobPruned) as err:
        snaps.job("j1")
    assert err.value.code == "SFV-714"
    assert "removed by prune" in err.value.message and "the newest is j2" in err.value.message
    with pytest.raises(UnknownJob):
        snaps.job("nope")
