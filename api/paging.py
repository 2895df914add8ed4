"""Paging of list routes that answer a bare JSON array (exports, compares).

Such a route takes ``limit`` and ``offset``, reads one row more than ``limit`` to know whether a
next page exists, and then says where it is in two headers: ``X-Next-Offset`` (the ``offset`` of
the next page) and ``Link: <...>; rel="next"`` (RFC 8288, the same URL with that offset). The last
page has neither. Routes whose body is an object carry ``next_offset`` in the body instead
(``JobList``, ``RecordChanges``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

T = TypeVar("T")

Offset = Annotated[
    int, Query(ge=0, le=10_000_000, description="rows to skip (the previous page's X-Next-Offset)")
]
NEXT_HEADERS = {
    "X-Next-Offset": {
        "description": "offset of the next page; absent on the last page",
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": 'the next page: `<URL>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    },
}


def page(rows: Sequence[T], *, limit: int, offset: int, request: Request, response: Response) -> list[T]:
    """The first ``limit`` of ``rows`` (read with ``limit + 1``), with the next-page headers set
    on ``response`` when there is more."""
    if len(rows) > limit:
        nxt = offset + limit
        response.headers["X-Next-Offset"] = str(nxt)
        url = request.url.include_query_params(offset=nxt, limit=limit)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return list(rows[:limit])
