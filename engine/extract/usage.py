"""API accounting: our own calls by kind, and the org's allowance as Salesforce reports it.

``ApiUsage`` is thread-safe (one per client, shared by the worker threads that use it) and
picklable (its lock is dropped and rebuilt), so a Dask task can return it and the driver can
:meth:`ApiUsage.merge` the counters of every partition into the job report.

Kinds (SALESFORCE_API.md §10): ``rest`` (describe, query pages, COUNT(), composite, /limits),
``bulk2_job`` (create, poll, abort, delete), ``bulk2_results_page``, ``bulk1_job`` (Bulk API 1.0
job and batch calls: create, add batch, close, abort, batch status, result lists),
``bulk1_results`` (result file downloads), ``blob``. Token requests
(``login``) and the unauthenticated version list (``versions``) are counted too but do not
count against ``DailyApiRequests``; neither do requests Salesforce refused for an invalid
session (``refused``: the client refreshes its session and sends them again).

**"API calls" has one meaning** (decision 0027): the requests that count against the org's
``DailyApiRequests``, by API: ``rest`` (kinds ``rest`` and ``blob``), ``bulk2`` (``bulk2_job``,
``bulk2_results_page``) and ``bulk1`` (``bulk1_job``, ``bulk1_results``). :func:`api_calls_of`
(in :mod:`engine.model`, so the catalog and the diff stages share it) computes them from any
usage record (an :class:`ApiUsage` snapshot, a manifest's job usage or an object's
``api_calls``), and every figure the product shows (CLI, job report, ``/usage``, the
Data view, ``sfvault data``, the usage ledger) comes from it. Bulk API 1.0 batches (each PK chunk
included) are counted beside the calls under ``bulk1_batches``: they count against
``DailyBulkApiBatches``, not against the calls.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from engine.model import API_OF_KIND, BULK1_BATCHES, ApiCalls, api_calls_of

__all__ = [
    "API_KINDS", "API_OF_KIND", "BULK1_BATCHES", "NOT_COUNTED_BY_ORG", "ApiCalls", "ApiUsage", "CallKind",
    "api_calls_of", "parse_limit_info",
]  # fmt: skip

CallKind = Literal[
    "rest", "bulk2_job", "bulk2_results_page", "bulk1_job", "bulk1_results", "blob", "login", "versions",
    "refused",
]  # fmt: skip
API_KINDS: tuple[CallKind, ...] = (
    "rest", "bulk2_job", "bulk2_results_page", "bulk1_job", "bulk1_results", "blob"
)  # fmt: skip
NOT_COUNTED_BY_ORG: tuple[CallKind, ...] = ("login", "versions", "refused")

_LIMIT_INFO = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """``(used, max)`` from a ``Sforce-Limit-Info`` header (``api-usage=N/M[; per-app...]``)."""
    if not value:
        return None
    m = _LIMIT_INFO.search(value)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


@dataclass
class ApiUsage:
    """Counters of one client (or, after merging, of one job).

    Attributes:
        calls: HTTP requests sent, by kind, retries included (each one costs the org a call).
        bytes_received: response bytes on the wire (compressed size when gzip was used).
        result_bytes: Bulk result CSV bytes after decompression, as Salesforce counts results
            (``DailyBulkV2QueryFileStorageMB``); the data a job moved, whatever the encoding.
        org_used, org_max: the latest ``Sforce-Limit-Info`` values (org-wide, other apps included).
        limits: ``{name: (max, remaining)}`` from the latest ``/limits``.
    """

    calls: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    result_bytes: int = 0
    org_used: int | None = None
    org_max: int | None = None
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)
    org_time: datetime | None = None
    """The org's clock as its latest answer's ``Date`` header said it (second resolution; None
    before any answer that carried one): where a job's delete-log window ends (decision 0031)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    parent: ApiUsage | None = field(default=None, repr=False, compare=False)
    """Where the org figures seen here are reported too (the counters of the client this one's
    client was derived from), so the job's view of the allowance is its newest whichever client
    made the job's last call. Not pickled."""

    def count(self, kind: CallKind, n: int = 1) -> None:
        with self._lock:
            self.calls[kind] = self.calls.get(kind, 0) + n

    def add_batches(self, n: int) -> None:
        """Bulk API 1.0 batches created (``DailyBulkApiBatches``), kept under ``bulk1_batches``."""
        if n > 0:
            with self._lock:
                self.calls[BULK1_BATCHES] = self.calls.get(BULK1_BATCHES, 0) + n

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def add_result_bytes(self, n: int) -> None:
        with self._lock:
            self.result_bytes += n

    def observe_header(self, value: str | None) -> None:
        """Record ``Sforce-Limit-Info``; called for every response."""
        parsed = parse_limit_info(value)
        if parsed is not None:
            self.observe_org(*parsed)

    def observe_date(self, value: str | None) -> None:
        """Record an answer's ``Date`` header (the org's time); called for every response."""
        if not value:
            return
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if at.tzinfo is None:
            return
        with self._lock:
            self.org_time = at.astimezone(UTC)

    def observe_limits(self, body: dict[str, Any]) -> None:
        """Record a ``/limits`` answer (every entry with integer ``Max``/``Remaining``)."""
        found: dict[str, tuple[int, int]] = {}
        for name, entry in body.items():
            if isinstance(entry, dict) and "Max" in entry and "Remaining" in entry:
                found[name] = (int(entry["Max"]), int(entry["Remaining"]))
        with self._lock:
            self.limits.update(found)
        if "DailyApiRequests" in found:
            mx, rem = found["DailyApiRequests"]
            self.observe_org(mx - rem, mx)

    @property
    def api_calls(self) -> int:
        """Calls that count against the org's DailyApiRequests (:func:`api_calls_of`)."""
        with self._lock:
            return api_calls_of(self.calls).total

    @property
    def remaining(self) -> int | None:
        """The org's remaining daily API requests, as last reported, or None if unknown."""
        if self.org_used is None or self.org_max is None:
            return None
        return self.org_max - self.org_used

    def limit(self, name: str) -> tuple[int, int] | None:
        """``(max, remaining)`` of a ``/limits`` entry, if it was read."""
        return self.limits.get(name)

    def observe_org(self, used: int | None, max_: int | None) -> None:
        """Keep the org's figures with the most requests used: merged counters come from
        clients that ran at once, so the newest figure is the highest, not the last merged."""
        if used is None:
            return
        with self._lock:
            if self.org_used is None or used >= self.org_used:
                self.org_used, self.org_max = used, max_
        if self.parent is not None:
            self.parent.observe_org(used, max_)

    def merge(self, other: ApiUsage) -> None:
        """Add ``other``'s call counts and bytes; keep the newest org figures of the two."""
        snap = other.snapshot()
        with self._lock:
            for k, v in snap["calls"].items():
                self.calls[k] = self.calls.get(k, 0) + v
            self.bytes_received += snap["bytes_received"]
            self.result_bytes += snap.get("result_bytes", 0)
            self.limits.update({k: (int(v[0]), int(v[1])) for k, v in snap["limits"].items()})
        self.observe_org(snap["org_used"], snap["org_max"])

    def snapshot(self) -> dict[str, Any]:
        """Plain data for reports and the catalog."""
        with self._lock:
            return {
                "calls": dict(self.calls),
                "api_calls": api_calls_of(self.calls).total,
                "bytes_received": self.bytes_received,
                "result_bytes": self.result_bytes,
                "org_used": self.org_used,
                "org_max": self.org_max,
                "limits": {k: list(v) for k, v in self.limits.items()},
            }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["parent"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
