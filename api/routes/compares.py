"""Compare jobs: start one, follow it in the job monitor, page through its changed records.

``POST /v1/orgs/{org}/compares`` validates the request from the manifests
(:func:`engine.jobs.compares.submit_compare`), records a ``queued`` compare and hands
:func:`~engine.jobs.compares.run_queued_compare` to the job runner; it answers 202 with the
queued compare. The summary (per object added / changed / removed and the changed fields with
their counts) appears on ``GET /v1/compares/{id}`` once it has succeeded, and
``GET /v1/compares/{id}/objects/{object}`` pages through the records with old and new values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from api.deps import Ctx, Operator, Viewer
from api.errors import error_responses
from api.paging import NEXT_HEADERS, Offset, page
from api.routes.data import JOB_ID_EXAMPLE, ErrorInfo, ObjectName, OrgName, org_scope
from engine.catalog import compares as ccmp
from engine.catalog import orgs as corgs
from engine.catalog.models import Compare
from engine.jobs.compares import MAX_PAGE, compare_details, submit_compare

router = APIRouter(tags=["data"])

CompareId = Annotated[str, PathParam(max_length=64, description="the compare's id", examples=["9f2c4e"])]
Change = Literal["added", "changed", "removed"]


class CompareRequest(BaseModel):
    """What to compare; every field is optional."""

    job: str | None = Field(
        default=None, max_length=128, description="the newer job (default: the newest)",
        examples=[JOB_ID_EXAMPLE],
    )  # fmt: skip
    against: str | None = Field(
        default=None, max_length=128,
        description="the older job, of the same cycle (default: the job before `job`)",
        examples=["20261124T000000Z-99ee7711"],
    )  # fmt: skip
    objects: list[ObjectName] | None = Field(
        default=None, min_length=1, max_length=2000,
        description="objects to compare (default: every object of the two jobs)", examples=[["Account"]],
    )  # fmt: skip


class ObjectChanges(BaseModel):
    """What changed in one object between the two jobs."""

    added: int = Field(description="records live at `job` and not at `against`", examples=[12])
    changed: int = Field(description="records live at both with a changed field", examples=[40])
    removed: int = Field(description="records live at `against` and not at `job`", examples=[3])
    changed_fields: dict[str, int] = Field(
        default_factory=dict, description="field → number of changed records in which it changed",
        examples=[{"Name": 7, "Phone": 33}],
    )  # fmt: skip


class CompareSummary(BaseModel):
    job: str = Field(description="the newer job", examples=[JOB_ID_EXAMPLE])
    against: str = Field(description="the older job", examples=["20261124T000000Z-99ee7711"])
    objects: dict[str, ObjectChanges] | None = Field(
        default=None, description="per object, once the compare has succeeded"
    )


class CompareOut(BaseModel):
    """A compare job as the job monitor shows it."""

    id: str = Field(examples=["4be0f0d7c1d94b1e9d0f3b8c6f2f6a11"])
    org: str = Field(examples=["acme-prod"])
    job: str | None = Field(description="the newer job", examples=[JOB_ID_EXAMPLE])
    against: str | None = Field(description="the older job", examples=["20261124T000000Z-99ee7711"])
    objects: list[str] | None = Field(description="the objects asked for (None: all)", examples=[None])
    state: str = Field(description="queued, running, succeeded or failed", examples=["running"])
    progress: float = Field(ge=0, le=1, description="objects done / objects", examples=[0.5])
    summary: CompareSummary | None = Field(description="the jobs compared and, when done, the counts")
    created_by: str | None = Field(examples=["token:ops"])
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: ErrorInfo | None = Field(description="why it failed")


class FieldChange(BaseModel):
    field: str = Field(examples=["Phone"])
    old: str | None = Field(description="the value at `against`, as text", examples=["+1 555 0100"])
    new: str | None = Field(description="the value at `job`, as text", examples=["+1 555 0199"])


class RecordChange(BaseModel):
    id: str = Field(description="the record's Id", examples=["001000000000001AAA"])
    change: Change = Field(examples=["changed"])
    fields: list[FieldChange] = Field(description="changed fields (empty for added and removed records)")


class RecordChanges(BaseModel):
    """One page of the records of an object that the compare found, in Id order."""

    compare: str = Field(examples=["4be0f0d7c1d94b1e9d0f3b8c6f2f6a11"])
    object: str = Field(examples=["Account"])
    change: Change | None = Field(description="the filter applied (None: all kinds)", examples=[None])
    limit: int = Field(examples=[100])
    offset: int = Field(examples=[0])
    next_offset: int | None = Field(
        description="the offset of the next page; null on the last page", examples=[100]
    )
    records: list[RecordChange]


def _out(row: Compare, org: str) -> CompareOut:
    summary = CompareSummary.model_validate(row.summary) if row.summary else None
    error = ErrorInfo(code=row.error_code, message=row.error_message or "") if row.error_code else None
    return CompareOut(
        id=row.id, org=org, job=summary.job if summary else row.job_id,
        against=summary.against if summary else row.against_job_id, objects=row.objects, state=row.state,
        progress=row.progress, summary=summary, created_by=row.created_by, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, error=error,
    )  # fmt: skip


@router.post(
    "/v1/orgs/{org}/compares",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CompareOut,
    summary="Start a compare",
    responses=error_responses(401, 403, 404, 409, 422),
)
def start_compare(org: OrgName, body: CompareRequest, ctx: Ctx, principal: Operator) -> CompareOut:
    """Queue a compare of `job` against `against` (default: the newest job against the one before).

    Refused before anything is recorded for an unknown org or job (404), jobs of different cycles
    (409 SFV-703), a first job of a cycle without `against` (409 SFV-709) or an object that is
    not in the backup (404 SFV-704).
    """
    scope = org_scope(ctx, org)
    compare_id = submit_compare(
        scope.settings, scope.name, job=body.job, against=body.against,
        objects=tuple(body.objects) if body.objects is not None else None,
        created_by=principal.label, clock=ctx.clock,
    )  # fmt: skip
    ctx.runner.submit_queued("compare", compare_id, scope.settings)
    with ctx.tx() as s:
        return _out(ccmp.get_compare(s, compare_id), scope.name)


@router.get(
    "/v1/orgs/{org}/compares",
    response_model=list[CompareOut],
    summary="The compare jobs of an org, newest first",
    responses={200: {"headers": NEXT_HEADERS}, **error_responses(401, 403, 404, 422)},
)
def list_compares(
    org: OrgName,
    ctx: Ctx,
    _: Viewer,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many")] = 100,
    offset: Offset = 0,
) -> list[CompareOut]:
    """Newest first, ``limit`` at a time; ``X-Next-Offset`` and ``Link: rel="next"`` name the next page."""
    scope = org_scope(ctx, org)
    with ctx.tx() as s:
        rows = ccmp.list_compares(s, scope.id, limit=limit + 1, offset=offset)
        return [_out(row, scope.name) for row in page(rows, limit=limit, offset=offset, request=request,
                                                      response=response)]  # fmt: skip


@router.get(
    "/v1/compares/{compare_id}",
    response_model=CompareOut,
    summary="One compare: state, progress, per-object summary",
    responses=error_responses(401, 403, 404, 422),
)
def get_compare(compare_id: CompareId, ctx: Ctx, _: Viewer) -> CompareOut:
    with ctx.tx() as s:
        row = ccmp.get_compare(s, compare_id)
        return _out(row, corgs.get_org(s, row.org_id).name)


@router.get(
    "/v1/compares/{compare_id}/objects/{object}",
    response_model=RecordChanges,
    summary="The changed records of one object, with old and new field values",
    responses=error_responses(401, 403, 404, 409, 422),
)
def compare_object(
    compare_id: CompareId,
    object_name: Annotated[
        str,
        PathParam(
            alias="object", pattern=r"^[A-Za-z0-9_]{1,120}$", description="the object", examples=["Account"]
        ),
    ],
    ctx: Ctx,
    _: Viewer,
    change: Annotated[Change | None, Query(description="only this kind of change")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
    offset: Annotated[int, Query(ge=0, description="records to skip")] = 0,
) -> RecordChanges:
    """A page of the records the compare found in ``object``, in Id order; 409 SFV-711
    until the compare has succeeded."""
    rows = compare_details(ctx.settings, compare_id, object_name, change=change, limit=limit, offset=offset,
                           peek=True)  # fmt: skip
    return RecordChanges(
        compare=compare_id, object=object_name, change=change, limit=limit, offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
        records=[RecordChange.model_validate(r) for r in rows[:limit]],
    )  # fmt: skip
