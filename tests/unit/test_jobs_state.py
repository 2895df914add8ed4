"""engine.jobs.state.object_state (now over engine.diff.recovery) equals the independent in-memory oracle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from engine.errors import UnknownJob
from engine.jobs.state import object_state
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, RandomOrg, new_repository
from tests.helpers.reference_state import reference_state

ORG = "acme"


@pytest.mark.parametrize("seed", [11, 12])
def test_object_state_equals_the_reference_at_every_job(tmp_path: Path, seed: int) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(seed)
    org.seed_rows(50)
    w = ChainWriter(repo, ORG)
    ms = [w.commit("full", {"Account": org.full()})]
    for n in range(1, 5):
        since = org.now - timedelta(minutes=5)
        org.churn(7)
        ms.append(w.commit("incremental", {"Account": org.incremental(since, sweep=n % 2 == 0)}))
    for m in ms:
        ours = object_state(repo, ORG, "Account", job_id=m.job_id, scratch_root=tmp_path)
        ref = reference_state(repo, ORG, "Account", job_id=m.job_id)
        assert ours is not None and ref is not None
        assert ours.schema.equals(ref.schema) and ours.equals(ref), m.job_id
        assert ours["Id"].to_pylist() == sorted(ours["Id"].to_pylist())
    # the newest by default, the manifests the caller already has, and no scratch left behind
    assert object_state(repo, ORG, "Account", manifests=ms).equals(reference_state(repo, ORG, "Account"))
    assert list(tmp_path.glob("sfv-state-*")) == []


def test_none_when_not_captured_and_errors_for_unknown_jobs(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(4)
    org.seed_rows(5)
    w = ChainWriter(repo, ORG)
    assert object_state(repo, ORG, "Account") is None  # no snapshot yet
    w.commit("full", {"Account": org.full(), "Contact": ObjectChange(failed=True)})
    assert object_state(repo, ORG, "Contact") is None
    assert reference_state(repo, ORG, "Contact") is None
    ts = pa.timestamp("ms", "UTC")
    contacts = pa.table({"Id": ["003A", "003B"], "SystemModstamp": pa.array([org.now, org.now], ts)})
    w.commit("incremental", {"Contact": ObjectChange(rows=contacts, mode="full")})
    gone = pa.table({"Id": ["003A"], "SystemModstamp": pa.array([org.now], ts)})
    w.commit("incremental", {"Contact": ObjectChange(rows=gone, deletions=gone)})
    state = object_state(repo, ORG, "Contact")
    ref = reference_state(repo, ORG, "Contact")
    assert state is not None and ref is not None and state.equals(ref)
    assert state["Id"].to_pylist() == ["003B"]
    with pytest.raises(UnknownJob):
        object_state(repo, ORG, "Account", job_id="job-9999")
