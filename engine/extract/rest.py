"""REST API calls a backup needs: discovery, query paging, COUNT(), Id bounds, blobs, limits.

Query results are an iterator of pages (at most ~2,000 records each): memory is bounded by
one page whatever the size of the object (STYLE rule 14). Each page is one API call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO
from urllib.parse import quote

from engine.errors import SalesforceQueryError, SfvaultError, TransientError
from engine.extract.client import SalesforceClient
from engine.extract.composite import COMPOSITE_QUERIES_MAX, get_many
from engine.extract.soql import Soql, id_literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryPage:
    """One page of a REST query.

    Attributes:
        records: records with ``attributes`` removed, keys in SELECT order.
        total_size: rows matching the whole query (same on every page).
        done: True on the last page.
        next_url: the ``nextRecordsUrl`` path, None on the last page.
    """

    records: list[dict[str, Any]]
    total_size: int
    done: bool
    next_url: str | None


LOST_LOCATOR = "INVALID_QUERY_LOCATOR"


def _resume_after(soql: Soql | str, last_id: str | None) -> Soql | None:
    """``soql`` restricted to ``Id > last_id`` when it pages in ascending Id order, else None."""
    if not isinstance(soql, Soql) or last_id is None or soql.order_by != "Id ASC" or soql.limit is not None:
        return None
    return soql.and_where(f"Id > {id_literal(last_id)}")


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (_strip(v) if isinstance(v, dict) else v) for k, v in rec.items() if k != "attributes"}


class RestApi:
    """REST resources under ``/services/data/vNN.N`` for one client."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def resources(self) -> dict[str, str]:
        out: dict[str, str] = self.client.get_json("")
        return out

    def describe_global(self) -> dict[str, Any]:
        """``GET /sobjects``: ``{"sobjects": [...], ...}``."""
        out: dict[str, Any] = self.client.get_json("sobjects")
        return out

    def describe(self, sobject: str) -> dict[str, Any]:
        """``GET /sobjects/{name}/describe``; an unknown object is :class:`SalesforceNotFound`."""
        out: dict[str, Any] = self.client.get_json(f"sobjects/{quote(sobject)}/describe", sobject=sobject)
        return out

    def describe_many(self, sobjects: Sequence[str]) -> dict[str, dict[str, Any] | SfvaultError]:
        """Describes of up to :data:`COMPOSITE_MAX` objects in one ``POST /composite``.

        Salesforce counts a composite request as one API call whatever its subrequests (and runs
        them one after another), so describing a 500-object org costs 20 calls instead of 500.
        Each object maps to its describe, or to the typed error its subrequest answered.
        """
        paths = [(f"sobjects/{quote(name)}/describe", name) for name in sobjects]
        return dict(zip(sobjects, get_many(self.client, paths), strict=True))

    def limits(self) -> dict[str, Any]:
        return self.client.limits()

    def query_pages(
        self,
        soql: Soql | str,
        *,
        include_deleted: bool = False,
        batch_size: int | None = None,
        sobject: str = "",
        exact_numbers: bool = False,
        first: dict[str, Any] | None = None,
    ) -> Iterator[QueryPage]:
        """Pages of ``query`` (or ``queryAll`` with ``include_deleted``), following nextRecordsUrl.

        Pages are fetched lazily, one at a time; a transient failure retries that page only
        (query locators are re-fetchable for ~15 minutes).

        Salesforce keeps at most 10 query cursors open per user and drops the oldest when an
        11th opens, so a locator can answer ``INVALID_QUERY_LOCATOR`` while a job is still
        paging it (other tasks, probes and the user's other tools open cursors too). A query
        ordered by ``Id`` (:meth:`Soql.with_order_by`) then resumes with ``Id > <last Id>``;
        any other query raises :class:`SalesforceQueryError`.

        ``exact_numbers``: JSON numbers with a fraction or exponent are read as :class:`Decimal`
        (their exact text) instead of float, so a currency value of 18 digits keeps them all.

        ``first``: the query's first page as already answered (a :meth:`first_pages` subrequest),
        so paging goes on from its ``nextRecordsUrl`` without asking it again.
        """
        name = sobject or (soql.sobject if isinstance(soql, Soql) else "")
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        resource = "queryAll" if include_deleted else "query"

        def get(path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
            resp = self.client.request("GET", path, params=params, headers=headers, sobject=name)
            out: dict[str, Any] = resp.json(parse_float=Decimal) if exact_numbers else resp.json()
            return out

        def start(q: Soql | str) -> dict[str, Any]:
            return get(resource, {"q": str(q)})

        body = start(soql) if first is None else first
        last_id: str | None = None
        while True:
            page = QueryPage(
                records=[_strip(r) for r in body.get("records", [])],
                total_size=int(body.get("totalSize", 0)),
                done=bool(body.get("done", True)),
                next_url=body.get("nextRecordsUrl"),
            )
            if page.records and "Id" in page.records[-1]:
                last_id = page.records[-1]["Id"]
            yield page
            if page.done or not page.next_url:
                return
            try:
                body = get(page.next_url)
            except SalesforceQueryError as e:
                resumed = _resume_after(soql, last_id) if e.details.get("sf_code") == LOST_LOCATOR else None
                if resumed is None:
                    raise
                log.info("query locator lost, resuming by Id", extra={"sobject": name, "after": last_id})
                body = start(resumed)

    def query_records(self, soql: Soql | str, **kw: Any) -> Iterator[dict[str, Any]]:
        for page in self.query_pages(soql, **kw):
            yield from page.records

    def first_pages(
        self,
        queries: Sequence[tuple[Soql, bool]],
        *,
        sobject: str = "",
        batch_sizes: Sequence[int | None] | None = None,
        exact_numbers: bool = False,
    ) -> list[dict[str, Any] | SfvaultError]:
        """The first page of each ``(soql, include_deleted)`` query, up to
        :data:`COMPOSITE_QUERIES_MAX` of them in one ``POST /composite`` (one API call).

        Each query maps to its JSON page or to the typed error its subrequest answered.
        ``batch_sizes``: each query's page size (``Sforce-Query-Options`` on its subrequest);
        ``exact_numbers`` as in :meth:`query_pages`.
        """
        if len(queries) > COMPOSITE_QUERIES_MAX:
            raise ValueError(f"a composite request holds at most {COMPOSITE_QUERIES_MAX} queries")
        paths = [
            (f"{'queryAll' if deleted else 'query'}?q={quote(str(q), safe='')}", q.sobject)
            for q, deleted in queries
        ]
        sizes = list(batch_sizes) if batch_sizes is not None else [None] * len(queries)
        headers = [{"Sforce-Query-Options": f"batchSize={n}"} if n else None for n in sizes]
        return get_many(self.client, paths, sobject=sobject, headers=headers, exact_numbers=exact_numbers)

    def count_many(self, queries: Sequence[tuple[Soql, bool]]) -> list[int]:
        """``totalSize`` of each ``(COUNT() query, include_deleted)``, five per API call.

        Raises:
            SfvaultError: the first subrequest that failed (transient ones are asked again alone).
        """
        out: list[int] = []
        for i in range(0, len(queries), COMPOSITE_QUERIES_MAX):
            part = queries[i : i + COMPOSITE_QUERIES_MAX]
            if len(part) == 1:
                out.append(self.count(part[0][0], include_deleted=part[0][1]))
                continue
            for (q, deleted), page in zip(
                part, self.first_pages(part, sobject=part[0][0].sobject), strict=True
            ):
                if isinstance(page, TransientError):
                    out.append(self.count(q, include_deleted=deleted))
                elif isinstance(page, SfvaultError):
                    raise page
                else:
                    out.append(int(page.get("totalSize", 0)))
        return out

    def count(self, soql: Soql, *, include_deleted: bool = False) -> int:
        """``SELECT COUNT() ...``'s ``totalSize`` (``soql`` must be a COUNT query)."""
        if soql.fields:
            raise ValueError("count() needs a Soql.count(...) query")
        page = next(self.query_pages(soql, include_deleted=include_deleted))
        return page.total_size

    def id_bounds(self, base: Soql, *, include_deleted: bool = False) -> tuple[str | None, str | None]:
        """Smallest and largest Id matching ``base``'s WHERE (two small ``ORDER BY Id`` queries).

        ``ORDER BY`` is fine here: ``LIMIT 1`` on the indexed Id returns at once; partition
        queries never carry it.
        """
        q = Soql(base.sobject, ("Id",), base.where)
        first = q.with_order_by("Id").with_limit(1)
        last = q.with_order_by("Id", descending=True).with_limit(1)
        ends: list[list[dict[str, Any]]] = []
        pages = self.first_pages([(first, include_deleted), (last, include_deleted)], sobject=base.sobject)
        for x, page in zip((first, last), pages, strict=True):
            if isinstance(page, TransientError):  # asked again on its own, with retries
                ends.append(list(self.query_records(x, include_deleted=include_deleted)))
            elif isinstance(page, SfvaultError):
                raise page
            else:
                ends.append(list(page.get("records", [])))
        lo, hi = ends
        if not lo:
            return None, None
        assert hi
        return str(lo[0]["Id"]), str(hi[0]["Id"])

    def blob_path(self, sobject: str, record_id: str, field: str) -> str:
        return f"sobjects/{quote(sobject)}/{quote(record_id)}/{quote(field)}"

    def download_blob(
        self,
        sobject: str,
        record_id: str,
        field: str,
        write: Callable[[bytes], object],
        *,
        restart: Callable[[], object] | None = None,
        chunk_size: int = 1 << 20,
    ) -> int:
        """Stream a blob body (``Attachment.Body``, ``ContentVersion.VersionData``...) to ``write``."""
        return self.client.download(
            self.blob_path(sobject, record_id, field), write, restart=restart, chunk_size=chunk_size
        )

    def download_blob_to(self, sobject: str, record_id: str, field: str, fh: BinaryIO, **kw: Any) -> int:
        """Stream a blob into a seekable file; a retried download rewrites it from the start."""
        start = fh.tell()

        def restart() -> None:
            fh.seek(start)
            fh.truncate()

        return self.download_blob(sobject, record_id, field, fh.write, restart=restart, **kw)
