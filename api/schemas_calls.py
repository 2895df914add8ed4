"""The API calls of a job, as every route shows them (decision 0027).

"API calls" has one meaning: the requests that count against the org's ``DailyApiRequests``
(:func:`engine.model.api_calls_of`), by API; Bulk API 1.0 batches count against
``DailyBulkApiBatches`` and are shown beside them, not added to them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine.model import ApiCalls


class ApiCallsOut(BaseModel):
    """A job's calls against the org's daily API allowance, by API."""

    api_calls: int = Field(
        description="requests that count against DailyApiRequests: rest_calls + bulk2_calls + bulk1_calls "
        "(OAuth/SOAP logins and the version list are not counted)",
        examples=[412],
    )
    rest_calls: int = Field(
        description="REST API requests (describe, queries and their pages, COUNT(), composite, /limits, "
        "file bodies)",
        examples=[63],
    )
    bulk2_calls: int = Field(
        description="Bulk API 2.0 requests (job create, status polls, result pages, delete)", examples=[331]
    )
    bulk1_calls: int = Field(
        description="Bulk API 1.0 requests (job, batch, batch status, result lists, result files)",
        examples=[18],
    )
    bulk1_batches: int = Field(
        description="Bulk API 1.0 batches, PK chunks included (DailyBulkApiBatches, not calls)", examples=[6]
    )

    @classmethod
    def of(cls, calls: ApiCalls) -> ApiCallsOut:
        return cls(
            api_calls=calls.total, rest_calls=calls.rest, bulk2_calls=calls.bulk2, bulk1_calls=calls.bulk1,
            bulk1_batches=calls.bulk1_batches,
        )  # fmt: skip
