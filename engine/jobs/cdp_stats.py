"""Change events per protected object, for the data view (``sfvault data``, ``GET
/v1/orgs/{org}/data``; decision 0033). Read from the segment manifests only (no chunk is opened):
the counts are what the subscriber has committed to the repository."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.sink.segments import SegmentStore


@dataclass(frozen=True)
class ChangeEventCount:
    """One object's committed change events.

    ``events_after_job``: the events of the segments with commits at or after the job's start,
    i.e. those a recovery point starting from the job replays (counted by whole segments, as the
    replay reads them)."""

    object: str
    events: int
    segments: int
    gap_events: int
    restarts: int
    first_commit: datetime | None
    last_commit: datetime | None
    covered_to: datetime | None
    events_after_job: int

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("first_commit", "last_commit", "covered_to"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


def change_event_counts(repo: Any, org: str, objects: list[str], *,
                        job_started: datetime | None = None) -> list[ChangeEventCount]:  # fmt: skip
    """Per object of ``objects`` and every object with segments of ``org``, by name."""
    store = SegmentStore(repo)
    names = {h.name.split("/")[1] for h in store.names(org) if h.name.count("/") >= 2}
    out = []
    for obj in sorted(names | set(objects)):
        segs = store.segments(org, obj) if obj in names else []
        with_events = [s for s in segs if s.events]
        after = [s for s in with_events if job_started is not None and s.commit_ts_max >= job_started]
        out.append(ChangeEventCount(
            object=obj, events=sum(s.events for s in segs), segments=len(segs),
            gap_events=sum(len(s.gaps) for s in segs), restarts=sum(1 for s in segs if s.restart),
            first_commit=min((s.commit_ts_min for s in with_events), default=None),
            last_commit=max((s.commit_ts_max for s in with_events), default=None),
            covered_to=segs[-1].covered if segs else None,
            events_after_job=sum(s.events for s in after),
        ))  # fmt: skip
    return out
