"""Which job an object's data is as of: one model for job details, the Data view and exports.

A job's recovery point holds each object as of the newest job of the cycle that captured it.
When a job did not capture an object (the object failed in it, or an object-scoped job did not
include it), its data there is as of an earlier job, or absent when no job of the cycle captured
it. Job details, the Data view and exports list those objects as :class:`StaleObject` items
(:class:`engine.model.ObjectAsOf`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from engine.model import AsOf, ObjectAsOf

AsOfName = AsOf
"""this_job, earlier_job or absent (:data:`engine.model.AsOf`)."""
JOB_ID_EXAMPLE = "20261124T000000Z-99ee7711ab12"


class StaleObject(BaseModel):
    """An object whose data is not as of the job: as of an earlier job, or absent."""

    object: str = Field(description="the Salesforce object", examples=["Opportunity"])
    as_of: Literal["earlier_job", "absent"] = Field(
        description="earlier_job: its data is as of `as_of_job`; absent: no job of the cycle backed it up",
        examples=["earlier_job"],
    )
    as_of_job: str | None = Field(
        description="the newest job of the cycle that backed the object up (null when absent)",
        examples=[JOB_ID_EXAMPLE],
    )
    error_code: str | None = Field(
        description="the code the object failed with in the job (null: the job did not include it)",
        examples=["SFV-301"],
    )


def stale_objects(as_of: Iterable[ObjectAsOf]) -> list[StaleObject]:
    """The items of ``as_of`` that are not as of the job, by object name."""
    return [
        StaleObject(
            object=a.object,
            as_of="absent" if a.as_of == "absent" else "earlier_job",
            as_of_job=a.as_of_job,
            error_code=a.error_code,
        )
        for a in sorted(as_of, key=lambda a: a.object)
        if a.as_of != "this_job"
    ]
