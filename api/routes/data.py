"""The Data view: per-object statistics of a backup job (PRODUCT.md "Data", issue 6/7).

``GET /v1/orgs/{org}/data`` answers, per object at a job (default: the newest), the records,
the backup size, the records added / changed / removed since the previous job of the cycle and
the job's API usage, filtered by object type and by ranges of those counts. The work is
:func:`engine.diff.compare.job_stats` over :class:`~engine.diff.recovery.RecoveryPoints` of the
org's repository (its ``storage_location``, else ``settings.repository_url``): DuckDB with a
memory limit over a capped scratch folder under ``settings.scratch_dir``. The endpoint is a plain
``def``, so FastAPI runs it in its worker thread pool and the event loop never blocks. The
unfiltered statistics of a committed job are kept in a small LRU cache (:class:`StatsCache`),
so changing a filter does not run DuckDB again.

:func:`org_scope` (the org's catalog id and the settings that point at its repository) is shared
with the compare and export routes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints

from api.context import AppContext
from api.deps import Ctx, Viewer
from api.errors import error_responses
from api.schemas_asof import AsOfName, StaleObject, stale_objects
from api.schemas_calls import ApiCallsOut
from engine.catalog import orgs as corgs
from engine.config import Settings
from engine.diff.compare import ObjectStats, StatsFilter, job_stats
from engine.diff.recovery import RecoveryPoints, Snapshots
from engine.jobs.service import org_settings
from engine.sink.repository import open_repository

router = APIRouter(tags=["data"])

ORG_NAME = r"^[A-Za-z0-9._-]{1,128}$"
OrgName = Annotated[str, PathParam(pattern=ORG_NAME, description="the org's name", examples=["acme-prod"])]
JOB_ID_EXAMPLE = "20261125T000000Z-ab12cd34"
ObjectType = Literal["standard", "custom", "feed", "share", "files"]
ObjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,120}$")]
"""A Salesforce object's API name (``Account``, ``Invoice__c``)."""

# DuckDB limits of one statistics request (STYLE rule 14): bounded memory and scratch space
DUCKDB_MEMORY = "1GB"
DUCKDB_THREADS = 2
SCRATCH_BYTES = 8 << 30


@dataclass(frozen=True)
class OrgScope:
    """An org of the catalog and the settings whose ``repository_url`` is its repository."""

    id: int
    name: str
    settings: Settings


def org_scope(ctx: AppContext, org: str) -> OrgScope:
    """The org named ``org`` (404 SFV-101 when the catalog has no such org)."""
    with ctx.tx() as s:
        row = corgs.get_org_by_name(s, org)
        return OrgScope(row.id, row.name, org_settings(ctx.settings, row.storage_location))


# --- models ----------------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    """Why a compare or export failed (the code has a section in docs/TROUBLESHOOTING.md)."""

    code: str = Field(examples=["SFV-705"])
    message: str = Field(examples=["scratch folder /var/lib/sfvault/scratch/sfv-diff-1 would exceed ..."])


class ObjectStatsOut(BaseModel):
    """One object at the job."""

    object: str = Field(description="the Salesforce object", examples=["Account"])
    type: ObjectType = Field(description="the Data view's object type", examples=["standard"])
    records: int = Field(description="records in the recovery point at the job", examples=[1200])
    backup_bytes: int = Field(
        description="sealed bytes this job stored for the object (data, deletions, Id sweeps)",
        examples=[482133],
    )
    added: int = Field(description="records added since the previous job of the cycle", examples=[12])
    changed: int = Field(description="records changed since the previous job", examples=[40])
    removed: int = Field(description="records deleted (or archived) since the previous job", examples=[3])
    api_calls: int = Field(
        description="the job's calls for the object that count against DailyApiRequests "
        "(rest_calls + bulk2_calls + bulk1_calls)",
        examples=[7],
    )
    rest_calls: int = Field(description="REST API calls the job made for the object", examples=[4])
    bulk2_calls: int = Field(description="Bulk API 2.0 calls (create, polls, pages, delete)", examples=[3])
    bulk1_calls: int = Field(description="Bulk API 1.0 calls", examples=[0])
    bulk_jobs: int = Field(description="Bulk API 2.0 query jobs (0 where Bulk was not used)", examples=[1])
    bulk1_batches: int = Field(description="Bulk API 1.0 batches, PK chunks included", examples=[0])
    captured: bool = Field(
        description="false when the job did not capture the object (its state comes from earlier jobs)",
        examples=[True],
    )
    as_of: AsOfName = Field(
        description="this_job, or earlier_job when the job did not capture the object (it failed "
        "there, or the job did not include it): its records are as of `as_of_job`",
        examples=["this_job"],
    )
    as_of_job: str | None = Field(
        description="the newest job of the cycle that captured the object", examples=[JOB_ID_EXAMPLE]
    )


class DataTotals(BaseModel):
    """Sums over the listed objects."""

    records: int = Field(examples=[15400])
    backup_bytes: int = Field(examples=[8812331])
    added: int = Field(examples=[120])
    changed: int = Field(examples=[431])
    removed: int = Field(examples=[17])
    api_calls: int = Field(examples=[402])
    rest_calls: int = Field(examples=[63])
    bulk2_calls: int = Field(examples=[331])
    bulk1_calls: int = Field(examples=[0])
    bulk_jobs: int = Field(examples=[9])
    bulk1_batches: int = Field(examples=[0])


class ChangeEventsOut(BaseModel):
    """One object's change events committed by the subscriber (decision 0033)."""

    object: str = Field(examples=["Account"])
    events: int = Field(description="change events committed (every segment of the object)", examples=[1200])
    segments: int = Field(description="segments committed, heartbeats included", examples=[40])
    gap_events: int = Field(description="GAP_* events among them", examples=[0])
    restarts: int = Field(description="chains restarted after an expired replay id (SFV-452)", examples=[0])
    first_commit: datetime | None = Field(None, description="commit time of the oldest event")
    last_commit: datetime | None = Field(None, description="commit time of the newest event")
    covered_to: datetime | None = Field(None, description="the events are complete up to this instant")
    events_after_job: int = Field(
        description="events of the segments with commits at or after the job's start: what a recovery "
        "point from this job replays (counted by whole segments)",
        examples=[300],
    )


class DataStats(BaseModel):
    """Per-object statistics of one job (the Data view)."""

    org: str = Field(examples=["acme-prod"])
    job: str = Field(description="the job the statistics are for", examples=[JOB_ID_EXAMPLE])
    kind: str = Field(description="full or incremental", examples=["incremental"])
    cycle: str = Field(description="the backup cycle of the job", examples=["2026"])
    previous_job: str | None = Field(
        description="the job the changes are counted against (None: first job of its cycle)",
        examples=["20261124T000000Z-99ee7711"],
    )
    objects: list[ObjectStatsOut] = Field(description="objects that pass the filters, by name")
    totals: DataTotals = Field(description="sums over `objects`")
    usage: ApiCallsOut = Field(
        description="the whole job's API calls (the CLI's, the job report's and /usage's figure; the "
        "objects' calls do not add up to it: the job's own discovery calls are no object's)"
    )
    stale_objects: list[StaleObject] = Field(
        description="objects the job did not back up (a partial job, or one limited to chosen "
        "objects): as of an earlier job of the cycle, or absent (no job of the cycle backed them up, "
        "so they are not in `objects`); unfiltered"
    )
    change_events: list[ChangeEventsOut] = Field(
        default_factory=list,
        description="change events per protected object (and per object with committed segments); unfiltered",
    )


# --- the statistics cache ------------------------------------------------------------------

StatsKey = tuple[str, str, str, str | None]  # repository, org, job, previous job


class StatsCache:
    """Unfiltered statistics of committed jobs, least recently used first out.

    A committed job's manifest never changes (repository objects are write-once), so its
    statistics against the same previous job stay true; filters are applied per request. The
    key holds the previous job too, and the job is looked up in the manifests before the cache
    is asked, so a pruned job is never answered from it. ``max_entries`` bounds the memory (one
    small row per object per entry).
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[StatsKey, list[ObjectStats]] = OrderedDict()

    def get(self, key: StatsKey) -> list[ObjectStats] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: StatsKey, stats: list[ObjectStats]) -> None:
        with self._lock:
            self._entries[key] = stats
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def stats_cache(request: Request) -> StatsCache:
    """The application's statistics cache (``app.state.data_stats_cache``, made on first use)."""
    state = request.app.state
    cache: StatsCache | None = getattr(state, "data_stats_cache", None)
    if cache is None:
        cache = state.data_stats_cache = StatsCache()
    return cache


# --- filters ---------------------------------------------------------------------------------

Count = Annotated[int | None, Query(ge=0, description="inclusive bound (a count ≥ 0)")]


def stats_filter(
    types: Annotated[
        list[ObjectType] | None,
        Query(alias="type", description="object types to keep (repeatable); all when absent"),
    ] = None,
    min_added: Count = None,
    max_added: Count = None,
    min_changed: Count = None,
    max_changed: Count = None,
    min_removed: Count = None,
    max_removed: Count = None,
) -> StatsFilter:
    """The query's filters; a minimum above its maximum is refused with 422 naming the field."""
    errors = []
    for what, lo, hi in (("added", min_added, max_added), ("changed", min_changed, max_changed),
                         ("removed", min_removed, max_removed)):  # fmt: skip
        if lo is not None and hi is not None and lo > hi:
            errors.append({
                "loc": ("query", f"min_{what}"),
                "msg": f"min_{what} ({lo}) is greater than max_{what} ({hi})",
                "type": "value_error",
            })  # fmt: skip
    if errors:
        raise RequestValidationError(errors)
    return StatsFilter(frozenset(types or ()), min_added, max_added, min_changed, max_changed,
                       min_removed, max_removed)  # fmt: skip


# --- the endpoint ----------------------------------------------------------------------------


@router.get(
    "/v1/orgs/{org}/data",
    response_model=DataStats,
    summary="Per-object statistics of a job",
    responses=error_responses(401, 403, 404, 409, 422, 507),
)
def data_stats(
    org: OrgName,
    ctx: Ctx,
    _: Viewer,
    cache: Annotated[StatsCache, Depends(stats_cache)],
    filters: Annotated[StatsFilter, Depends(stats_filter)],
    job: Annotated[
        str | None,
        Query(max_length=128, description="job id (default: the newest)", examples=[JOB_ID_EXAMPLE]),
    ] = None,
) -> DataStats:
    """Records, backup size, added / changed / removed since the previous job and API usage,
    per object at ``job``; filtered by ``type`` and the ``min_*`` / ``max_*`` count ranges."""
    scope = org_scope(ctx, org)
    settings = scope.settings
    repo = open_repository(settings, clock=ctx.clock)
    try:
        snapshots = Snapshots.load(repo, scope.name)  # manifests only; raises UnknownOrg / UnknownJob
        target = snapshots.job(job)
        previous = snapshots.previous(target.job_id)
        stale = stale_objects(snapshots.as_of(target.job_id))
        key = (settings.repository_url, scope.name, target.job_id, previous.job_id if previous else None)
        stats = cache.get(key)
        if stats is None:
            with RecoveryPoints(
                repo, scope.name, scratch_root=settings.scratch_dir, max_scratch_bytes=SCRATCH_BYTES,
                memory_limit=DUCKDB_MEMORY, threads=DUCKDB_THREADS, snapshots=snapshots,
            ) as rp:  # fmt: skip
                stats = job_stats(rp, target.job_id)
            cache.put(key, stats)
        calls = target.job.usage.calls_by_api()
        events = _change_events(ctx, repo, scope.name, target.job.started_at)
    finally:
        repo.close()
    objects = [ObjectStatsOut(**s.to_dict()) for s in stats if filters.keep(s)]
    totals = DataTotals(**{k: sum(getattr(o, k) for o in objects) for k in DataTotals.model_fields})
    return DataStats(
        org=scope.name, job=target.job_id, kind=target.kind, cycle=target.cycle_id,
        previous_job=previous.job_id if previous is not None else None, objects=objects, totals=totals,
        usage=ApiCallsOut.of(calls), stale_objects=stale, change_events=events,
    )  # fmt: skip


def _change_events(ctx: AppContext, repo: Any, org: str, started: datetime | None) -> list[ChangeEventsOut]:
    from engine.jobs.cdp_stats import change_event_counts

    with ctx.tx() as s:
        st = corgs.get_org_by_name(s, org).settings
        protected = list(st.cdp_objects or []) if st.cdp_enabled else []
    counts = change_event_counts(repo, org, protected, job_started=started)
    return [ChangeEventsOut(**c.__dict__) for c in counts]
