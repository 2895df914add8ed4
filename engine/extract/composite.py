"""``GET`` subrequests in one ``POST /composite`` (SALESFORCE_API.md §2.7).

Salesforce counts a composite request as one API call whatever its subrequests ("The entire series
of requests counts as a single call toward your API limits"), runs them one after another, and
serves "All sObject resources (/services/data/vXX.X/sobjects/)" but sObject Blob Get among them,
up to :data:`engine.extract.rest.COMPOSITE_MAX` a request. With ``allOrNone`` false each
subrequest answers on its own: its JSON body, or an error classified as the same call made alone
would be (:func:`engine.extract.classify.classify`), so a caller maps a subrequest's refusal as
it maps the plain call's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from engine.errors import SalesforceRequestFailed, SfvaultError
from engine.extract.classify import classify
from engine.extract.client import SalesforceClient
from engine.extract.rest import COMPOSITE_MAX


def get_many(
    client: SalesforceClient, paths: Sequence[tuple[str, str]], *, sobject: str = ""
) -> list[dict[str, Any] | SfvaultError]:
    """The JSON body of each ``(path, sobject)`` GET (``path`` relative to
    ``/services/data/vXX.X/``, query string included and encoded), or the typed error its
    subrequest answered; one API call (``sobject`` names it in the client's log and errors).

    Raises:
        ValueError: more than :data:`COMPOSITE_MAX` paths.
        SfvaultError: the composite request itself failed (after the client's retries).
    """
    if len(paths) > COMPOSITE_MAX:
        raise ValueError(f"a composite request holds at most {COMPOSITE_MAX} subrequests")
    prefix = f"/services/data/v{client.api_version}/"
    subrequests = [
        {"method": "GET", "url": prefix + path.lstrip("/"), "referenceId": f"r{i}"}
        for i, (path, _) in enumerate(paths)
    ]
    resp = client.request(
        "POST", "composite", json={"allOrNone": False, "compositeRequest": subrequests}, sobject=sobject
    )
    answers = {str(a.get("referenceId")): a for a in resp.json().get("compositeResponse", [])}
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
