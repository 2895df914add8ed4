"""Reading an object's state at a job back from the repository (the recovery point of one object).

The semantics live in one place, :mod:`engine.diff.recovery` (DESIGN.md "Recovery points"); this
module is the small in-memory convenience over it that tests, the e2e ground truth and the demo
use: :func:`object_state` opens a :class:`engine.diff.recovery.RecoveryPoints` on a temporary
scratch folder, reads the state as one Arrow table and removes the folder again. Use
``RecoveryPoints`` directly for large objects (it streams batches and keeps memory bounded).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.diff.recovery import RecoveryPoints, Snapshots, ordered
from engine.errors import ObjectNotInBackup
from engine.model import Manifest


def object_state(repo: Any, org: str, obj: str, *, job_id: str | None = None,
                 manifests: list[Manifest] | None = None,
                 scratch_root: Path | str | None = None) -> pa.Table | None:  # fmt: skip
    """The live rows of ``obj`` at ``job_id`` (default: the newest snapshot), sorted by Id.

    None when no job of the target's cycle captured the object in full yet (or there is no
    snapshot at all). ``manifests`` replaces the repository's manifest listing (the e2e ground
    truth passes the ones it already read). An unknown ``job_id`` raises
    :class:`engine.errors.UnknownJob`.
    """
    ms = ordered(manifests if manifests is not None else repo.manifests(org))
    if not ms:
        return None
    with tempfile.TemporaryDirectory(prefix="sfv-state-", dir=scratch_root) as tmp:
        rp = RecoveryPoints(repo, org, scratch_root=tmp, snapshots=Snapshots(org, ms))
        with rp:
            try:
                return rp.table(obj, job_id)
            except ObjectNotInBackup:
                return None
