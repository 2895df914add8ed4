"""Jobs: back up now, the org's job list, job details with live progress, cancel, the XLSX report.

"Back up now" is thin: the job service (:class:`engine.jobs.service.JobService`, the door the CLI
and the scheduler use too) checks the policy (storage location, subscription, seats, objects
before the first full, a job already queued or running, the plan's quota; each refusal a typed
error with its code) and writes the ``queued`` job row; the route hands the admitted job to the
:class:`~api.background.JobRunner` and answers 202 with that row at once, before discovery or
planning (the runner initialises the org's repository on first use).

Job details merge the runner's live per-object progress into the catalog rows while the job
runs in this process, so a caller sees which objects succeeded and which hit exceptions so far.
Once a job committed, each object row says which job its data in the job's recovery point is as
of, and ``stale_objects`` lists those a partial job did not back up (as of an earlier job of the
cycle, or absent): :func:`engine.catalog.jobs.objects_as_of`. The XLSX report carries the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.deps import Ctx, Operator, Viewer
from api.errors import error_responses
from api.reports import XLSX_MEDIA_TYPE, ReportJob, ReportObject, build_report, report_filename
from api.schemas_asof import AsOfName, StaleObject, stale_objects
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.models import Job, JobObject, JobState, Org
from engine.catalog.usage import usage_of_job
from engine.errors import (
    InvalidJobTransition,
    InvalidRequest,
    JobNotCancellable,
)
from engine.jobs.planning import BackupRequest
from engine.model import ObjectAsOf, api_calls_total, call_counts

router = APIRouter(tags=["jobs"])

ORG_NAME = r"^[A-Za-z0-9._-]{1,128}$"
JOB_ID = r"^[A-Za-z0-9._:-]{1,128}$"
JOB_ID_EXAMPLE = "20261125T000000Z-ab12cd34ef56"
OrgName = Annotated[str, PathParam(pattern=ORG_NAME, description="the org's name", examples=["acme-prod"])]
JobId = Annotated[str, PathParam(pattern=JOB_ID, description="the job's id", examples=[JOB_ID_EXAMPLE])]
ObjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,120}$")]
"""A Salesforce object's API name (``Account``, ``Invoice__c``)."""

# --- models ----------------------------------------------------------------------------------


class BackupNow(BaseModel):
    """A "back up now" request: every object in scope, or a chosen set (after the first full)."""

    objects: list[ObjectName] | None = Field(
        None,
        min_length=1,
        max_length=5000,
        description="API names of the objects to back up; null = every object in scope. Choosing "
        "objects needs a completed full backup of the org (else 409 SFV-606).",
        examples=[None, ["Account", "Contact"]],
    )
    full: bool = Field(
        False,
        description="extract the objects in full instead of the changes since the previous job",
        examples=[False],
    )


class JobOut(BaseModel):
    """One backup job, as the job list shows it."""

    id: str = Field(description="the job id (sorts by creation time)", examples=[JOB_ID_EXAMPLE])
    org: str = Field(description="the org's name", examples=["acme-prod"])
    kind: str = Field(description="full or incremental", examples=["incremental"])
    trigger: str = Field(description="scheduled or manual", examples=["manual"])
    state: str = Field(
        description="queued, running, succeeded, partial, failed, cancelled or skipped", examples=["running"]
    )
    cycle_id: str | None = Field(description="the backup cycle of the job", examples=[JOB_ID_EXAMPLE])
    requested_objects: list[str] | None = Field(
        description="the chosen objects of an object-scoped job; null = every object", examples=[None]
    )
    cancel_requested: bool = Field(description="a cancel was asked for and the job has not stopped yet")
    created_at: datetime = Field(examples=["2026-11-25T00:00:00Z"])
    started_at: datetime | None = Field(description="start of the job", examples=["2026-11-25T00:00:03Z"])
    finished_at: datetime | None = Field(description="end of the job", examples=["2026-11-25T00:04:41Z"])
    records: int = Field(description="records backed up (final once the job finished)", examples=[15400])
    bytes: int = Field(description="backup size in sealed bytes", examples=[8812331])
    metadata_items: int = Field(description="metadata items backed up", examples=[0])
    error_code: str | None = Field(
        description="why the job failed, was partial or skipped (docs/TROUBLESHOOTING.md)", examples=[None]
    )
    error_message: str | None = Field(examples=[None])
    policy_override: bool = Field(
        default=False,
        description="started with `sfvault backup --override-policy` (the refusal it passed: "
        "`override_reason`)",
        examples=[False],
    )
    override_reason: str | None = Field(default=None, examples=[None])


class JobList(BaseModel):
    """A page of an org's jobs, newest first."""

    org: str = Field(examples=["acme-prod"])
    items: list[JobOut]
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    next_offset: int | None = Field(
        description="the offset of the next page; null on the last page", examples=[50]
    )
    next_after: str | None = Field(
        None,
        description="keyset paging: pass it as `after` for the next page (stable while new jobs "
        "arrive); null on the last page",
        examples=["20261125T000000Z-ab12cd34ef56"],
    )


class JobObjectOut(BaseModel):
    """One object of a job: final figures, or the live progress while the job runs."""

    name: str = Field(description="the Salesforce object", examples=["Account"])
    state: str = Field(description="pending, running, succeeded, failed or skipped", examples=["succeeded"])
    records: int = Field(description="records extracted", examples=[1200])
    bytes: int = Field(description="sealed bytes written", examples=[482133])
    duration_s: float = Field(description="extraction time in seconds", examples=[3.2])
    api_calls: int = Field(
        default=0,
        description="calls made for the object that count against DailyApiRequests "
        "(rest_calls + bulk2_calls + bulk1_calls)",
        examples=[7],
    )
    rest_calls: int = Field(description="REST API calls made for the object", examples=[4])
    bulk2_calls: int = Field(default=0, description="Bulk API 2.0 calls made for the object", examples=[3])
    bulk1_calls: int = Field(default=0, description="Bulk API 1.0 calls made for the object", examples=[0])
    bulk2_jobs: int = Field(description="Bulk API 2.0 query jobs (0 where Bulk was not used)", examples=[1])
    bulk2_pages: int = Field(description="Bulk API 2.0 result pages read", examples=[1])
    bulk1_batches: int = Field(
        default=0, description="Bulk API 1.0 batches, PK chunks included (not calls)", examples=[0]
    )
    partitions: int | None = Field(default=None, description="Id-range partitions (live only)", examples=[4])
    partitions_done: int | None = Field(
        default=None, description="partitions finished (live only)", examples=[2]
    )
    error_code: str | None = Field(description="the exception the object hit", examples=[None])
    error_message: str | None = Field(examples=[None])
    files_unavailable: int = Field(
        default=0,
        description="file bodies Salesforce answered with 403 or 404 although their record was queried",
        examples=[0],
    )
    warning_code: str | None = Field(
        default=None,
        description="a warning on an object that succeeded, e.g. SFV-805 on ContentVersion and "
        "ContentDocument: the backup user lacks Query All Files, so only files shared with it were "
        "backed up",
        examples=[None],
    )
    warning_message: str | None = Field(default=None, examples=[None])
    as_of: AsOfName | None = Field(
        default=None,
        description="which job the object's data in this job's recovery point is as of: this_job, "
        "earlier_job (it failed here: see `as_of_job`) or absent (no job of the cycle backed it up); "
        "null while the job runs or when it committed nothing",
        examples=["this_job"],
    )
    as_of_job: str | None = Field(
        default=None, description="the newest job of the cycle that backed the object up",
        examples=[JOB_ID_EXAMPLE],
    )  # fmt: skip


class JobErrorOut(BaseModel):
    """An error recorded on the job (per object, or for the whole job)."""

    object: str | None = Field(description="the object it concerns; null = the whole job", examples=["Case"])
    code: str = Field(examples=["SFV-403"])
    message: str = Field(examples=["the org's daily API allowance is used up"])
    occurred_at: datetime = Field(examples=["2026-11-25T00:03:10Z"])


class ObjectCounts(BaseModel):
    """How many objects are in each state."""

    total: int = Field(examples=[42])
    succeeded: int = Field(examples=[30])
    failed: int = Field(examples=[1])
    running: int = Field(examples=[3])
    pending: int = Field(examples=[8])


class RecoveryPointObjectOut(BaseModel):
    """One object of a ``recovery_point`` job: the backup it starts from and the change events it
    holds (decision 0033; the window fields are absent on jobs made before it)."""

    model_config = ConfigDict(populate_by_name=True)

    base_job: str = Field(description="the backup job the replay starts from", examples=[JOB_ID_EXAMPLE])
    from_: str = Field(alias="from", description="start of the replay window (the base job's start)")
    events: int = Field(description="events in the segments the replay read", examples=[120])
    segments: int = Field(description="segments the replay read", examples=[3])
    rows: int = Field(description="records of the object at the instant", examples=[3000])
    events_applied: int | None = Field(
        None, description="change events committed in the window", examples=[97]
    )
    change_rows: int | None = Field(None, description="change rows (one per record per event)", examples=[99])
    first_replay_id: str | None = Field(None, description="replay id (hex) of the first event in the window")
    last_replay_id: str | None = Field(None, description="replay id (hex) of the last event in the window")
    first_commit: datetime | None = Field(None, description="commit time of the first event in the window")
    last_commit: datetime | None = Field(None, description="commit time of the last event in the window")
    change_types: dict[str, int] = Field(
        default_factory=dict, description="events per change type", examples=[{"UPDATE": 90, "CREATE": 7}]
    )


class RecoveryPointOut(BaseModel):
    """What a ``recovery_point`` job holds."""

    at: datetime = Field(description="the instant")
    objects: dict[str, RecoveryPointObjectOut] = Field(description="per object")


class JobDetails(JobOut):
    """A job with its per-object rows and errors (live progress merged while it runs)."""

    live: bool = Field(description="the job runs in this service and `objects` includes its live progress")
    object_counts: ObjectCounts
    objects: list[JobObjectOut] = Field(description="one row per object, by name")
    errors: list[JobErrorOut] = Field(description="errors recorded on the job, oldest first")
    stale_objects: list[StaleObject] = Field(
        default_factory=list,
        description="objects this job did not back up although it committed (a partial job): their "
        "data in the job's recovery point, and in its exports, is as of an earlier job of the cycle, "
        "or absent",
    )
    recovery_point: RecoveryPointOut | None = Field(
        None, description="a `recovery_point` job: the instant and per object the change events it holds"
    )


# --- helpers ---------------------------------------------------------------------------------


def _job_out(job: Job, org: str) -> JobOut:
    return JobOut(
        id=job.id, org=org, kind=job.kind, trigger=job.trigger, state=job.state, cycle_id=job.cycle_id,
        requested_objects=job.requested_objects, cancel_requested=job.cancel_requested,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        records=job.records, bytes=job.bytes, metadata_items=job.metadata_items,
        error_code=job.error_code, error_message=job.error_message, policy_override=job.policy_override,
        override_reason=job.override_reason,
    )  # fmt: skip


def _org_name(s: Session, org_id: int) -> str:
    return corgs.get_org(s, org_id).name


def _object_row(o: JobObject) -> JobObjectOut:
    return JobObjectOut(
        name=o.object_name, state=o.state, records=o.records, bytes=o.bytes, duration_s=o.duration_s,
        api_calls=api_calls_total(o), rest_calls=o.rest_calls,
        bulk2_calls=o.bulk2_calls, bulk1_calls=o.bulk1_calls, bulk2_jobs=o.bulk2_jobs,
        bulk2_pages=o.bulk2_pages, bulk1_batches=o.bulk1_batches, error_code=o.error_code,
        error_message=o.error_message, files_unavailable=o.files_unavailable, warning_code=o.warning_code,
        warning_message=o.warning_message,
    )  # fmt: skip


def _report_row(o: JobObject, as_of: ObjectAsOf | None) -> ReportObject:
    return ReportObject(
        name=o.object_name, state=o.state, records=o.records, bytes=o.bytes, chunks=o.chunks,
        duration_s=o.duration_s, **call_counts(o), error_code=o.error_code, error_message=o.error_message,
        files_unavailable=o.files_unavailable, warning_code=o.warning_code, warning_message=o.warning_message,
        as_of=as_of.as_of if as_of else None, as_of_job=as_of.as_of_job if as_of else None,
    )  # fmt: skip


def _objects_of(job: Job, live: dict[str, dict[str, Any]] | None) -> list[JobObjectOut]:
    rows = {o.object_name: _object_row(o) for o in job.objects}
    for name, p in (live or {}).items():
        row = rows.get(name)
        state = str(p.get("state") or "pending")
        if row is not None and row.state in ("succeeded", "failed", "skipped"):
            rows[name] = row.model_copy(
                update={"partitions": p.get("partitions"), "partitions_done": p.get("partitions_done")}
            )
            continue
        rows[name] = JobObjectOut(
            name=name, state=state, records=int(p.get("records") or 0), bytes=int(p.get("bytes") or 0),
            duration_s=row.duration_s if row else 0.0, api_calls=row.api_calls if row else 0,
            rest_calls=row.rest_calls if row else 0, bulk2_calls=row.bulk2_calls if row else 0,
            bulk1_calls=row.bulk1_calls if row else 0, bulk1_batches=row.bulk1_batches if row else 0,
            bulk2_jobs=row.bulk2_jobs if row else 0, bulk2_pages=row.bulk2_pages if row else 0,
            partitions=p.get("partitions"), partitions_done=p.get("partitions_done"),
            error_code=p.get("error_code"), error_message=p.get("error_message"),
        )  # fmt: skip
    return [rows[k] for k in sorted(rows)]


def _with_as_of(objects: list[JobObjectOut], as_of: dict[str, ObjectAsOf]) -> list[JobObjectOut]:
    out = []
    for o in objects:
        a = as_of.get(o.name)
        out.append(o if a is None else o.model_copy(update={"as_of": a.as_of, "as_of_job": a.as_of_job}))
    return out


def _counts(objects: list[JobObjectOut]) -> ObjectCounts:
    def n(state: str) -> int:
        return sum(1 for o in objects if o.state == state)

    return ObjectCounts(
        total=len(objects), succeeded=n("succeeded"), failed=n("failed"), running=n("running"),
        pending=n("pending"),
    )  # fmt: skip


# --- endpoints -------------------------------------------------------------------------------


@router.post(
    "/v1/orgs/{org}/backups",
    status_code=202,
    response_model=JobOut,
    summary="Back up now",
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def back_up_now(org: OrgName, body: BackupNow, ctx: Ctx, who: Operator) -> JobOut:
    """Start a backup of the org: every object in scope, or the chosen `objects` (only once the
    org has a full backup). Answers 202 with the `queued` job at once, before it logs in or plans;
    follow it with `GET /v1/jobs/{job_id}`.

    Refusals: 404 SFV-101 unknown org; 400 SFV-806 `objects` names objects outside the org's scope
    (every one named; checked against the objects of the current cycle, and by one describeGlobal
    only for names the catalog does not know); 409 SFV-605 no storage location (set
    `storage_location` with `PATCH /v1/orgs/{org}/settings`); 403 SFV-603 subscription expired; 403
    SFV-604 seats exceeded; 409 SFV-606 objects chosen before the first full; 409 SFV-601 a job of
    the org's lane is already queued or running (an incremental runs beside a new cycle's full, a
    second full never); 429 SFV-602 the plan's jobs per 24 hours are used up. "Data backup off"
    stops only the schedule: an explicit back up now still runs.
    """
    request = BackupRequest(
        org=org, full=body.full, objects=tuple(sorted(set(body.objects))) if body.objects else None
    )
    service = ctx.jobs
    admitted = service.admit(org, request, role=who.role.value, trigger="manual")
    ctx.runner.start_backup(admitted, service)
    with ctx.tx() as s:
        return _job_out(cjobs.get_job(s, admitted.job_id), org)


@router.get(
    "/v1/orgs/{org}/jobs",
    response_model=JobList,
    summary="The org's jobs, newest first",
    responses=error_responses(401, 404, 422),
)
def list_jobs(
    org: OrgName,
    ctx: Ctx,
    _who: Viewer,
    state: Annotated[
        list[JobState] | None,
        Query(description="keep jobs in these states (repeatable); all when absent", examples=["running"]),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="page size", examples=[50])] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="jobs to skip", examples=[0])] = 0,
    after: Annotated[
        str | None,
        Query(
            max_length=128,
            description="keyset paging: the previous page's `next_after` (the jobs after that one); "
            "`offset` then counts from there",
            examples=["20261125T000000Z-ab12cd34ef56"],
        ),
    ] = None,
) -> JobList:
    """The org's backup jobs by creation time, newest first, one page at a time (one query on
    the ``(org_id, created_at)`` index; the org is looked up separately only for an empty page).
    ``after`` pages by key: a page does not shift when new jobs arrive meanwhile."""
    with ctx.tx() as s:
        stmt = select(Job).join(Org, Org.id == Job.org_id).where(Org.name == org)
        if after is not None:
            of_org = select(Job).join(Org, Org.id == Job.org_id).where(Org.name == org)
            last = s.scalar(of_org.where(Job.id == after))
            if last is None:
                corgs.get_org_by_name(s, org)  # 404 SFV-101 for an unknown org
                raise InvalidRequest(what=f"query.after: org {org} has no job {after}")
            stmt = stmt.where(or_(Job.created_at < last.created_at,
                                  and_(Job.created_at == last.created_at, Job.id < last.id)))  # fmt: skip
        if state:
            stmt = stmt.where(Job.state.in_([st.value for st in state]))
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1).offset(offset)
        rows = list(s.scalars(stmt))
        if not rows:
            corgs.get_org_by_name(s, org)  # 404 SFV-101 for an unknown org
        items = [_job_out(j, org) for j in rows[:limit]]
    more = len(rows) > limit
    return JobList(
        org=org, items=items, limit=limit, offset=offset,
        next_offset=offset + limit if more else None, next_after=items[-1].id if more else None,
    )  # fmt: skip


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobDetails,
    summary="Job details with per-object progress",
    responses=error_responses(401, 404, 422),
)
def job_details(job_id: JobId, ctx: Ctx, _who: Viewer) -> JobDetails:
    """Start, end, records, metadata items, size, state and errors of the job, with one row per
    object. While the job runs in this service, the rows include its live progress: which objects
    succeeded, which hit exceptions, which are still running."""
    live = ctx.runner.progress(job_id)
    with ctx.tx() as s:
        job = cjobs.get_job(s, job_id, with_objects=True)
        running = not JobState(job.state).finished
        as_of = cjobs.objects_as_of(s, job)
        objects = _with_as_of(_objects_of(job, live if running else None), as_of)
        errors = [
            JobErrorOut(object=e.object_name, code=e.code, message=e.message, occurred_at=e.occurred_at)
            for e in sorted(job.errors, key=lambda e: (e.occurred_at, e.id))
        ]
        base = _job_out(job, _org_name(s, job.org_id))
        rp = RecoveryPointOut.model_validate(job.recovery_point) if job.recovery_point else None
    return JobDetails(
        **base.model_dump(), live=running and live is not None, object_counts=_counts(objects),
        objects=objects, errors=errors, stale_objects=stale_objects(as_of.values()), recovery_point=rp,
    )  # fmt: skip


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    summary="Ask a queued or running job to stop",
    responses=error_responses(401, 403, 404, 409, 422),
)
def cancel_job(job_id: JobId, ctx: Ctx, _who: Operator) -> JobOut:
    """A queued job is cancelled at once; a running job is asked to stop (it ends `cancelled`,
    committing nothing). A finished job answers 409 SFV-910."""
    try:
        job = ctx.jobs.cancel(job_id)
    except InvalidJobTransition:
        with ctx.tx() as s:
            state = cjobs.get_job(s, job_id).state
        raise JobNotCancellable(job=job_id, state=state) from None
    with ctx.tx() as s:
        out = _job_out(job, _org_name(s, job.org_id))
    ctx.runner.cancel_local(job_id)
    return out


@router.get(
    "/v1/jobs/{job_id}/report.xlsx",
    summary="The job report as an XLSX workbook",
    response_class=Response,
    responses={
        200: {
            "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a Summary sheet and an Objects sheet (one row per object); every error "
            "code links to its section of docs/TROUBLESHOOTING.md",
        },
        **error_responses(401, 404, 422),
    },
)
def job_report(job_id: JobId, ctx: Ctx, _who: Viewer) -> Response:
    """Download the job report: summary (org, job, kind, state, start, end, totals, API usage) and
    one row per object with counts, sizes, timings, API calls, state and error code."""
    with ctx.tx() as s:
        job = cjobs.get_job(s, job_id, with_objects=True)
        org = _org_name(s, job.org_id)
        usage = usage_of_job(s, job.id)
        as_of = cjobs.objects_as_of(s, job)
        objects = [_report_row(o, as_of.get(o.object_name)) for o in job.objects]
        info = ReportJob(
            org=org, job_id=job.id, kind=job.kind, trigger=job.trigger, state=job.state,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            records=job.records, bytes=job.bytes, metadata_items=job.metadata_items,
            **call_counts(usage), error_code=job.error_code, error_message=job.error_message,
        )  # fmt: skip
    body = build_report(info, objects)
    filename = report_filename(org, job_id)
    return Response(
        content=body,
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
