"""Export jobs: queue one, follow the queue (job monitor), download the ZIP, show its password.

``POST /v1/orgs/{org}/exports`` checks the rules (:func:`engine.jobs.exports.submit_export`: one
export per org at a time, the monthly volume limit, the org, job and objects) and records a
``queued`` export; :func:`~engine.jobs.exports.run_queued_export` then runs on the job runner
and writes the AES-encrypted ZIP under ``settings.export_dir``. Operators download it; the
password is generated at submission and handed once, in the 202 answer, to a caller whose role
may see passwords (admin); admins may show it again (``GET /v1/exports/{id}/password``). It is
never logged, and both answers carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator
from starlette.responses import Response

from api.deps import Admin, Ctx, Operator, Viewer
from api.errors import error_responses
from api.paging import NEXT_HEADERS, Offset, page
from api.routes.data import JOB_ID_EXAMPLE, ErrorInfo, ObjectName, OrgName, org_scope
from api.schemas_asof import StaleObject, stale_objects
from engine.catalog import exports as cexp
from engine.catalog import orgs as corgs
from engine.catalog.models import Export, Role
from engine.diff.compare import FILE_OBJECTS
from engine.jobs.exports import (
    ExportRequest,
    export_archive_path,
    show_password,
    submit_export,
)

router = APIRouter(tags=["data"])

ExportId = Annotated[
    str,
    PathParam(max_length=64, description="the export's id", examples=["0c3e5d1f9a7b4c2e8d6f1a3b5c7e9d0f"]),
]
Kind = Literal["records", "files"]
FormatName = Literal["csv", "mysql", "files"]
ScopeName = Literal["changed", "cycle"]
RECORD_FORMATS = ("csv", "mysql")


class ExportCreate(BaseModel):
    """What to export. ``format`` defaults to ``csv`` for records and ``files`` for files."""

    kind: Kind = Field(
        default="records", description="records (CSV / MySQL) or file bodies", examples=["records"]
    )
    format: FormatName | None = Field(
        default=None, description="csv or mysql for records; files for files", examples=["csv"]
    )
    scope: ScopeName = Field(
        default="changed",
        description="changed: records changed since the previous job; cycle: all data of the cycle",
        examples=["changed"],
    )
    objects: list[ObjectName] | None = Field(
        default=None, min_length=1, max_length=2000,
        description="objects to export (null: every object of the backup; for files, the file objects)",
        examples=[["Account", "Contact"]],
    )  # fmt: skip
    job: str | None = Field(
        default=None, max_length=128, description="the job to export (default: the newest)", examples=[None]
    )

    @field_validator("format")
    @classmethod
    def _format_fits_kind(cls, value: FormatName | None, info: ValidationInfo) -> FormatName:
        kind = info.data.get("kind", "records")
        if value is None:
            return "files" if kind == "files" else "csv"
        if kind == "files" and value != "files":
            raise ValueError("a files export has format 'files'")
        if kind == "records" and value not in RECORD_FORMATS:
            raise ValueError("a records export has format 'csv' or 'mysql'")
        return value

    @field_validator("objects")
    @classmethod
    def _files_are_file_objects(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError("objects are listed twice")
            other = sorted(set(value) - FILE_OBJECTS)
            if info.data.get("kind") == "files" and other:
                raise ValueError(f"a files export takes only {', '.join(sorted(FILE_OBJECTS))}; not {other}")
        return value


class ExportOut(BaseModel):
    """An export job as the job monitor shows it (never its password)."""

    id: str = Field(examples=["0c3e5d1f9a7b4c2e8d6f1a3b5c7e9d0f"])
    org: str = Field(examples=["acme-prod"])
    kind: Kind = Field(examples=["records"])
    format: FormatName = Field(examples=["csv"])
    scope: ScopeName = Field(examples=["changed"])
    objects: list[str] = Field(description="the objects asked for (empty: all)", examples=[["Account"]])
    job: str | None = Field(
        description="the job exported (None: the newest when it ran)", examples=[JOB_ID_EXAMPLE]
    )
    state: str = Field(description="queued, running, succeeded, failed or cancelled", examples=["running"])
    progress: float = Field(ge=0, le=1, description="objects done / objects", examples=[0.25])
    size_bytes: int = Field(description="size of the ZIP once it has succeeded", examples=[1048576])
    created_by: str | None = Field(examples=["token:ops"])
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: ErrorInfo | None = Field(description="why it failed")
    download: str | None = Field(
        description="where to download the ZIP (operator), once it has succeeded",
        examples=["/v1/exports/0c3e5d1f9a7b4c2e8d6f1a3b5c7e9d0f/download"],
    )
    complete: bool | None = Field(
        description="true when every object of the export is as of the exported job; false when "
        "`stale_objects` lists some (e.g. the export of a partial job); null for exports recorded "
        "before this was tracked",
        examples=[False],
    )
    stale_objects: list[StaleObject] | None = Field(
        description="objects whose data in the export is not as of the exported job: as of an "
        "earlier job of the cycle (the newest that backed them up), or absent; also the column "
        "`as_of` of the ZIP's manifest.csv",
    )


class ExportCreated(ExportOut):
    """The answer to the caller who queued the export: the export, and the ZIP's password once."""

    password: str | None = Field(
        description="the ZIP's AES password, handed once to the caller who queued the export if its "
        "role may see passwords (admin); null for an operator, who asks an admin "
        "(`GET /v1/exports/{id}/password`). Open the ZIP with 7-Zip (`7z x FILE.zip`), not `unzip` "
        "(it does not know AES: 'unsupported compression method 99')",
        examples=["k3H9vQ2pZx7mLw4aT8nR5cY6bJ1e"],
    )


class ExportPassword(BaseModel):
    password: str = Field(description="the ZIP's AES password", examples=["k3H9-vQ2p-Zx7m-Lw4a"])


def _out(row: Export, org: str) -> ExportOut:
    error = ErrorInfo(code=row.error_code, message=row.error_message or "") if row.error_code else None
    as_of = cexp.export_stale_objects(row)
    stale = stale_objects(as_of) if as_of is not None else None
    return ExportOut(
        id=row.id, org=org, kind=row.kind, format=row.format, scope=row.scope,  # type: ignore[arg-type]
        objects=list(row.objects or []), job=row.job_id, state=row.state, progress=row.progress,
        size_bytes=row.size_bytes, created_by=row.created_by, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, error=error,
        download=f"/v1/exports/{row.id}/download" if row.state == "succeeded" else None,
        complete=None if stale is None else not stale, stale_objects=stale,
    )  # fmt: skip


@router.post(
    "/v1/orgs/{org}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExportCreated,
    summary="Queue an export",
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
def start_export(
    org: OrgName, body: ExportCreate, ctx: Ctx, principal: Operator, response: Response
) -> ExportCreated:
    """Queue a records or files export of the org; it runs in the background.

    The ZIP's password is generated now and is in this answer (``password``) when the caller's
    role may see passwords (admin), and nowhere else except ``GET /v1/exports/{id}/password``
    (admins). Refused before anything is recorded for an unknown org, job or object (404), while
    another export of the org is queued or running (409 SFV-706) and when the monthly export
    volume would be exceeded (429 SFV-707).
    """
    scope = org_scope(ctx, org)
    request = ExportRequest(
        org=scope.name, kind=body.kind, format=body.format or "csv", scope=body.scope,
        objects=tuple(body.objects) if body.objects is not None else None, job=body.job,
        created_by=principal.label,
    )  # fmt: skip
    export_id = submit_export(scope.settings, request, clock=ctx.clock)
    password = show_password(ctx.settings, export_id) if principal.at_least(Role.ADMIN) else None
    ctx.runner.submit_queued("export", export_id, scope.settings)
    response.headers["Cache-Control"] = "no-store"
    with ctx.tx() as s:
        out = _out(cexp.get_export(s, export_id), scope.name)
    return ExportCreated(**out.model_dump(), password=password)


@router.get(
    "/v1/orgs/{org}/exports",
    response_model=list[ExportOut],
    summary="The export queue and job monitor of an org, newest first",
    responses={200: {"headers": NEXT_HEADERS}, **error_responses(401, 403, 404, 422)},
)
def list_exports(
    org: OrgName,
    ctx: Ctx,
    _: Viewer,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many")] = 100,
    offset: Offset = 0,
) -> list[ExportOut]:
    """Newest first, ``limit`` at a time; ``X-Next-Offset`` and ``Link: rel="next"`` name the next page."""
    scope = org_scope(ctx, org)
    with ctx.tx() as s:
        rows = cexp.list_exports(s, scope.id, limit=limit + 1, offset=offset)
        return [_out(row, scope.name) for row in page(rows, limit=limit, offset=offset, request=request,
                                                      response=response)]  # fmt: skip


@router.get(
    "/v1/exports/{export_id}",
    response_model=ExportOut,
    summary="One export: state, progress, size",
    responses=error_responses(401, 403, 404, 422),
)
def get_export(export_id: ExportId, ctx: Ctx, _: Viewer) -> ExportOut:
    with ctx.tx() as s:
        row = cexp.get_export(s, export_id)
        return _out(row, corgs.get_org(s, row.org_id).name)


@router.get(
    "/v1/exports/{export_id}/download",
    response_class=FileResponse,
    summary="Download the encrypted ZIP",
    responses={
        200: {"content": {"application/zip": {}}, "description": "the AES-encrypted ZIP"},
        **error_responses(401, 403, 404, 409, 422),
    },
)
def download_export(export_id: ExportId, ctx: Ctx, _: Operator) -> FileResponse:
    """The ZIP of a succeeded export (409 SFV-710 before that); its password is on
    ``/v1/exports/{id}/password`` (admins)."""
    path = export_archive_path(ctx.settings, export_id)
    with ctx.tx() as s:
        org = corgs.get_org(s, cexp.get_export(s, export_id).org_id).name
    return FileResponse(path, media_type="application/zip", filename=f"sfvault-export-{org}-{export_id}.zip")


@router.get(
    "/v1/exports/{export_id}/password",
    response_model=ExportPassword,
    summary="Show the ZIP password again (admins)",
    responses=error_responses(401, 403, 404, 422),
)
def export_password(export_id: ExportId, ctx: Ctx, _: Admin, response: Response) -> ExportPassword:
    """The password of an export's ZIP, unsealed from the catalog (404 before it has one)."""
    response.headers["Cache-Control"] = "no-store"
    return ExportPassword(password=show_password(ctx.settings, export_id))
