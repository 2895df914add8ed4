"""Classification of Salesforce answers into the typed errors of ``engine.errors``.

This is the boundary (STYLE rule 12): every HTTP failure is turned here, once, into a
``TransientError`` (retried by the client's tenacity wrapper) or a ``PermanentError``. The
decision uses the HTTP status and the ``errorCode`` of the JSON error body, never the message
text. The one exception is a *Failed* Bulk job, whose JobInfo carries only a free-text
``errorMessage``; :func:`classify_failed_job` is the single place that reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from engine.errors import (
    SalesforceAuthError,
    SalesforceBulkUnsupported,
    SalesforceJobFailed,
    SalesforceNotFound,
    SalesforceQueryError,
    SalesforceQueryTimeout,
    SalesforceRequestFailed,
    SalesforceRequestLimitExceeded,
    SalesforceTransient,
    SfvaultError,
)

# errorCodes of queries that cannot succeed as written (400).
QUERY_ERROR_CODES = frozenset(
    {
        "MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR",
        "INVALID_QUERY_LOCATOR", "MALFORMED_ID", "INVALID_OPERATION", "INVALIDJOB",
        "FEATURE_NOT_ENABLED",
    }
)  # fmt: skip
BULK_UNSUPPORTED_CODES = frozenset({"INVALIDENTITY"})
TIMEOUT_CODES = frozenset({"QUERY_TIMEOUT"})
SESSION_CODES = frozenset({"INVALID_SESSION_ID", "InvalidSessionId"})
# LIMIT_EXCEEDED: the daily Bulk 2.0 query job allowance (DailyBulkV2QueryJobs) on job creation.
# ExceededQuota: Bulk API 1.0's answer when the daily API or batch allowance is spent.
LIMIT_CODES = frozenset(
    {"REQUEST_LIMIT_EXCEEDED", "LIMIT_EXCEEDED", "TXN_SECURITY_METERING_ERROR", "ExceededQuota"}
)
TRANSIENT_CODES = frozenset({"SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "API_TEMPORARILY_UNAVAILABLE"})
TRANSIENT_STATUSES = frozenset({408, 420, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ErrorBody:
    """The first error of a Salesforce error body, whatever its shape."""

    code: str
    message: str


def parse_error_body(resp: httpx.Response) -> ErrorBody:
    """``[{"errorCode", "message"}]`` (REST, Bulk 2.0), ``{"error", "error_description"}``
    (OAuth) or anything else (empty code, truncated text)."""
    try:
        body = json.loads(resp.content or b"null")
    except ValueError:
        return _xml_error_body(resp) or ErrorBody("", resp.text[:200])
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error") or body.get("exceptionCode") or ""
        msg = body.get("message") or body.get("error_description") or body.get("exceptionMessage") or ""
        return ErrorBody(str(code), str(msg)[:500])
    return ErrorBody("", str(body)[:200])


def _xml_error_body(resp: httpx.Response) -> ErrorBody | None:
    """The Bulk API 1.0 XML error: ``<error xmlns=...><exceptionCode>..<exceptionMessage>..``."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(resp.content)
    except ElementTree.ParseError:
        return None
    found = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in root}
    if "exceptionCode" not in found:
        return None
    return ErrorBody(found["exceptionCode"], found.get("exceptionMessage", "")[:500])


def is_invalid_session(resp: httpx.Response) -> bool:
    """A 401 that clients answer by logging in again (exactly ``INVALID_SESSION_ID``, or the Bulk
    API 1.0 ``InvalidSessionId``)."""
    return resp.status_code == 401 and parse_error_body(resp).code in SESSION_CODES


def is_allowance_spent(resp: httpx.Response) -> bool:
    """``REQUEST_LIMIT_EXCEEDED``: Salesforce refused the request because the org's daily API
    allowance is spent, so the request itself did not count against it."""
    return resp.status_code >= 400 and parse_error_body(resp).code == "REQUEST_LIMIT_EXCEEDED"


def classify(resp: httpx.Response, *, sobject: str = "") -> SfvaultError | None:
    """The typed error for an unsuccessful response, or None for a success (< 400)."""
    status = resp.status_code
    if status < 400:
        return None
    err = parse_error_body(resp)
    code = err.code
    if code in LIMIT_CODES:
        return SalesforceRequestLimitExceeded(status=status, sf_code=code, what=err.message or code)
    if code in TIMEOUT_CODES:
        return SalesforceQueryTimeout(object=sobject, status=status, sf_code=code, what=err.message)
    if status in TRANSIENT_STATUSES or code in TRANSIENT_CODES or status >= 500:
        return SalesforceTransient(status=status, sf_code=code, what=code or f"HTTP {status}")
    if status == 401:
        return SalesforceAuthError(status=status, sf_code=code, what=f"{code or 'HTTP 401'}: {err.message}")
    if code in BULK_UNSUPPORTED_CODES:
        return SalesforceBulkUnsupported(object=sobject, status=status, sf_code=code, what=err.message)
    if code in QUERY_ERROR_CODES:
        return SalesforceQueryError(object=sobject, status=status, sf_code=code, what=err.message)
    if status == 404 or code == "NOT_FOUND":
        return SalesforceNotFound(status=status, sf_code=code or "NOT_FOUND", what=err.message or "not found")
    return SalesforceRequestFailed(status=status, sf_code=code, what=err.message)


def classify_transport(exc: httpx.TransportError) -> SalesforceTransient:
    """Connection resets, timeouts and protocol errors are transient."""
    return SalesforceTransient(
        status=0, sf_code=type(exc).__name__, what=f"{type(exc).__name__} talking to Salesforce"
    )


def classify_oauth(resp: httpx.Response) -> SfvaultError:
    """Token endpoint failures: 5xx/429 transient; everything else refuses the credentials."""
    err = parse_error_body(resp)
    if resp.status_code in TRANSIENT_STATUSES or resp.status_code >= 500:
        return SalesforceTransient(
            status=resp.status_code, sf_code=err.code, what="token endpoint unavailable"
        )
    return SalesforceAuthError(status=resp.status_code, sf_code=err.code, what=f"{err.code}: {err.message}")


# The only text matching in the extract stage: a Failed job carries no error code.
_TIMEOUT_HINTS = ("timeout", "timed out", "too long", "retried more than")
_UNSUPPORTED_HINTS = ("not supported by the bulk api", "compound data not supported")


def classify_failed_job(sobject: str, state: str, error_message: str | None) -> SfvaultError:
    """A Failed/Aborted Bulk 2.0 job as a typed error (timeout → bisect; unsupported → REST)."""
    text = (error_message or "").lower()
    if state == "Failed" and any(h in text for h in _TIMEOUT_HINTS):
        return SalesforceQueryTimeout(object=sobject, sf_code="QUERY_TIMEOUT", what=error_message or "")
    if state == "Failed" and any(h in text for h in _UNSUPPORTED_HINTS):
        return SalesforceBulkUnsupported(object=sobject, sf_code="INVALIDENTITY", what=error_message or "")
    return SalesforceJobFailed(object=sobject, sf_code=state, what=error_message or state)
