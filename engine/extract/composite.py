"""``GET`` subrequests in one ``POST /composite`` (SALESFORCE_API.md §2.7).

Salesforce counts a composite request as one API call whatever its subrequests ("The entire series
of requests counts as a single call toward your API limits"), runs them one after another, and
serves "All sObject resources (/services/data/vXX.X/sobjects/)" but sObject Blob Get among them,
up to :data:`COMPOSITE_MAX` a request. With ``allOrNone`` false each
subrequest answers on its own: its JSON body, or an error classified as the same call made alone
would be (:func:`engine.extract.classify.classify`), so a caller maps a subrequest's refusal as
it maps the plain call's.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx

from engine.errors import SalesforceRequestFailed, SfvaultError
from engine.extract.classify import classify
from engine.extract.client import SalesforceClient

COMPOSITE_MAX = 25
"""Subrequests of one ``/composite`` request (Salesforce's limit; at most 5 of them queries)."""
COMPOSITE_QUERIES_MAX = 5
"""Query subrequests of one ``/composite`` request (Salesforce's limit)."""


def get_many(
    client: SalesforceClient,
    paths: Sequence[tuple[str, str]],
    *,
    sobject: str = "",
    headers: Sequence[dict[str, str] | None] | None = None,
    exact_numbers: bool = False,
) -> list[dict[str, Any] | SfvaultError]:
    """The JSON body of each ``(path, sobject)`` GET (``path`` relative to
    ``/services/data/vXX.X/``, query string included and encoded), or the typed error its
    subrequest answered; one API call (``sobject`` names it in the client's log and errors).

    ``headers``: each subrequest's own ``httpHeaders`` (``Sforce-Query-Options`` for a query's
    page size); ``exact_numbers``: JSON numbers with a fraction or exponent read as
    :class:`~decimal.Decimal` (as :meth:`engine.extract.rest.RestApi.query_pages` reads them).

    Raises:
        ValueError: more than :data:`COMPOSITE_MAX` paths.
        SfvaultError: the composite request itself failed (after the client's retries).
    """
    if len(paths) > COMPOSITE_MAX:
        raise ValueError(f"a composite request holds at most {COMPOSITE_MAX} subrequests")
    prefix = f"/services/data/v{client.api_version}/"
    subrequests: list[dict[str, Any]] = [
        {"method": "GET", "url": prefix + path.lstrip("/"), "referenceId": f"r{i}"}
        for i, (path, _) in enumerate(paths)
    ]
    for sub, extra in zip(subrequests, headers or [None] * len(paths), strict=True):
        if extra:
            sub["httpHeaders"] = extra
    resp = client.request(
        "POST", "composite", json={"allOrNone": False, "compositeRequest": subrequests}, sobject=sobject
    )
    got = resp.json(parse_float=Decimal) if exact_numbers else resp.json()
    answers = {str(a.get("referenceId")): a for a in got.get("compositeResponse", [])}
    out: list[dict[str, Any] | SfvaultError] = []
    for i, (_, name) in enumerate(paths):
        answer = answers.get(f"r{i}", {})
        status = int(answer.get("httpStatusCode") or 0)
        body = answer.get("body")
        if status == 200 and isinstance(body, dict):
            out.append(body)
            continue
        err = classify(httpx.Response(status or 500, json=body), sobject=name)
        out.append(
            err
            or SalesforceRequestFailed(status=status, sf_code="", what="composite subrequest without a body")
        )
    return out
