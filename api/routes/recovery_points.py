"""Recovery points at an instant: ``POST /v1/orgs/{org}/recovery-points`` (operator; decision 0026).

The route parses the request and calls :func:`engine.jobs.recovery_point.make_recovery_point`, which
materialises the state of the objects at ``at`` (the newest backup at or before it plus the change
events the subscriber committed) as a job of kind ``recovery_point``; that job then appears in the
job list and is compared and exported like any job. It runs in the request (a few seconds for
objects of thousands of records); the answer is the committed job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import Ctx, Operator
from api.errors import error_responses
from api.routes.data import JOB_ID_EXAMPLE, ObjectName, OrgName, org_scope
from engine.jobs.recovery_point import make_recovery_point

router = APIRouter(tags=["data"])


class RecoveryPointRequest(BaseModel):
    """The instant and the objects."""

    at: AwareDatetime = Field(description="the instant (ISO 8601 with a time zone)",
                              examples=["2026-12-06T10:00:00Z"])  # fmt: skip
    objects: list[ObjectName] = Field(min_length=1, max_length=200, description="the objects",
                                      examples=[["Account", "Contact"]])  # fmt: skip


class RecoveryPointOut(BaseModel):
    """The committed ``recovery_point`` job."""

    job: str = Field(description="the job's id", examples=[JOB_ID_EXAMPLE])
    org: str = Field(examples=["acme-prod"])
    at: datetime = Field(description="the instant")
    snapshot: str = Field(description="the job's manifest in the repository")
    objects: dict[str, dict[str, Any]] = Field(
        description="per object: the backup job it starts from (`base_job`), the replay's start "
        "(`from`), the change events applied (`events`, `segments`) and the records (`rows`)"
    )


@router.post(
    "/v1/orgs/{org}/recovery-points",
    status_code=status.HTTP_201_CREATED,
    response_model=RecoveryPointOut,
    summary="Generate a recovery point at an instant",
    responses=error_responses(401, 403, 404, 409, 422),
)
def create_recovery_point(
    org: OrgName, body: RecoveryPointRequest, ctx: Ctx, _: Operator
) -> RecoveryPointOut:
    """The state of `objects` at `at`, materialised as a job of kind `recovery_point`.

    409 SFV-456 when an object has no backup at or before `at` taken while change events were
    collected, or no committed change events; 409 SFV-458 when `at` is later than the change events
    the subscriber has made durable (run or wait for `sfvault cdp run`); 404 for an unknown org or
    one without backups.
    """
    scope = org_scope(ctx, org)
    res = make_recovery_point(scope.settings, scope.name, body.at, list(dict.fromkeys(body.objects)),
                              clock=ctx.clock)  # fmt: skip
    return RecoveryPointOut(
        job=res.job_id, org=res.org, at=res.at, snapshot=res.snapshot, objects=res.objects
    )
