"""API usage: the org's daily allowances, ``/limits``, ``Sforce-Limit-Info`` and a request log.

Counting rules follow SALESFORCE_API.md §10: every authenticated request under
``/services/data/vXX.X/`` counts against ``DailyApiRequests`` (including Bulk 2.0 create, poll
and each result page, and ``/limits`` itself unless configured otherwise); OAuth/SOAP logins and
the version list do not. Bulk 2.0 query jobs count against ``DailyBulkV2QueryJobs`` and their
result volume against ``DailyBulkV2QueryFileStorageMB``; they consume no batches. Every Bulk API
1.0 request (``/services/async/``, counted by :mod:`emulator.bulk1`) counts against
``DailyApiRequests`` and every Bulk 1.0 batch, each PK chunk included, against
``DailyBulkApiBatches``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

# (Max) of the allowances that nothing in the emulator consumes; shown as real orgs show them.
STATIC_LIMITS: dict[str, int] = {
    "ActiveScratchOrgs": 3,
    "AnalyticsExternalDataSizeMB": 40960,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51200,
    "DailyAsyncApexExecutions": 250000,
    "DailyAsyncApexTests": 500,
    "DailyDeliveredPlatformEvents": 50000,
    "DailyDurableGenericStreamingApiEvents": 10000,
    "DailyDurableStreamingApiEvents": 1000000,
    "DailyEinsteinDataInsightsStoryCreation": 1000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyFunctionsApiCallLimit": 235000,
    "DailyGenericStreamingApiEvents": 10000,
    "DailyScratchOrgs": 6,
    "DailyStandardVolumePlatformEvents": 10000,
    "DailyStreamingApiEvents": 1000000,
    "DailyWorkflowEmails": 2000000,
    "DurableStreamingApiConcurrentClients": 2000,
    "HourlyAsyncReportRuns": 1200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5000,
    "HourlyDashboardStatuses": 999999999,
    "HourlyLongTermIdMapping": 100000,
    "HourlyManagedContentPublicRequests": 50000,
    "HourlyODataCallout": 10000,
    "HourlyPublishedPlatformEvents": 250000,
    "HourlyPublishedStandardVolumePlatformEvents": 100000,
    "HourlyShortTermIdMapping": 100000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 1000,
    "MassEmail": 5000,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "MonthlyPlatformEventsUsageEntitlement": 1500000,
    "Package2VersionCreates": 6,
    "Package2VersionCreatesWithoutValidation": 500,
    "PermissionSets": 1500,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "SingleEmail": 5000,
    "StreamingApiConcurrentClients": 2000,
}

DEFAULT_MAX = {
    "DailyApiRequests": 100_000,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DataStorageMB": 10_240,
    "FileStorageMB": 51_200,
    # change events delivered to Pub/Sub subscribers (emulator.pubsub); shared with platform events
    "DailyDeliveredPlatformEvents": 50_000,
}
COUNTED = ("DailyApiRequests", "DailyBulkApiBatches", "DailyBulkV2QueryJobs")


class UsageLimits:
    """The org's consumable allowances. Thread-safe."""

    def __init__(self, daily_api_requests: int = DEFAULT_MAX["DailyApiRequests"]) -> None:
        self._lock = threading.Lock()
        self._max = dict(DEFAULT_MAX)
        self._max["DailyApiRequests"] = daily_api_requests
        self._used: Counter[str] = Counter()
        self._result_bytes = 0
        self.by_category: Counter[str] = Counter()

    def try_consume_api(self, category: str) -> bool:
        """Count one API request; ``False`` (and nothing counted) when the allowance is spent."""
        with self._lock:
            if self._used["DailyApiRequests"] >= self._max["DailyApiRequests"]:
                return False
            self._used["DailyApiRequests"] += 1
            self.by_category[category] += 1
            return True

    def try_consume(self, name: str, n: int = 1) -> bool:
        with self._lock:
            if self._used[name] + n > self._max[name]:
                return False
            self._used[name] += n
            return True

    def add_result_bytes(self, n: int) -> None:
        with self._lock:
            self._result_bytes += n
            self._used["DailyBulkV2QueryFileStorageMB"] = self._result_bytes // 1_000_000

    def api_usage(self) -> tuple[int, int]:
        with self._lock:
            return self._used["DailyApiRequests"], self._max["DailyApiRequests"]

    def header(self) -> str:
        used, mx = self.api_usage()
        return f"api-usage={used}/{mx}"

    def snapshot(self, data_mb: int, file_mb: int) -> dict[str, dict[str, int]]:
        """The ``/limits`` body; storage figures are passed in (they come from the store)."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            used = dict(self._used)
            used["DataStorageMB"] = data_mb
            used["FileStorageMB"] = file_mb
            for name, mx in sorted({**STATIC_LIMITS, **self._max}.items()):
                u = used.get(name, 0)
                out[name] = {"Max": mx, "Remaining": max(0, mx - u)}
            return out

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "max": dict(self._max),
                "used": dict(self._used),
                "result_bytes": self._result_bytes,
                "by_category": dict(self.by_category),
            }

    def reset(self) -> None:
        with self._lock:
            self._used.clear()
            self._result_bytes = 0
            self.by_category.clear()

    def set(self, name: str, *, max_: int | None = None, used: int | None = None) -> None:
        with self._lock:
            if name not in self._max:
                raise KeyError(name)
            if max_ is not None:
                self._max[name] = int(max_)
            if used is not None:
                self._used[name] = int(used)


SUBREQUESTS_STATE = "sf_subrequests"
"""The request-scope state key under which a composite request leaves its subrequests' paths for
the request log."""


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    time: float
    method: str
    path: str
    status: int
    bytes: int
    category: str
    duration_ms: float
    subrequests: tuple[str, ...] = ()
    """The paths of a composite request's subrequests, in order (no query strings)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes": self.bytes,
            "category": self.category,
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.subrequests:
            out["subrequests"] = list(self.subrequests)
        return out


class RequestLog:
    """The last ``maxlen`` requests (method, path, status, body bytes; a composite request's
    subrequest paths). Paths carry no query string, so no token or password ever lands here."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[RequestRecord] = deque(maxlen=maxlen)
        self._seq = 0

    def add(
        self, method: str, path: str, status: int, nbytes: int, category: str, duration_ms: float,
        subrequests: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        with self._lock:
            self._seq += 1
            self._entries.append(
                RequestRecord(
                    self._seq, time.time(), method, path, status, nbytes, category, duration_ms, subrequests
                )
            )

    def entries(self, since_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = [e.to_dict() for e in self._entries if e.seq > since_seq]
        return rows[-limit:] if limit else rows

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def categorize(method: str, path: str) -> str:
    """A coarse kind of request, for counting calls per category."""
    if path.startswith("/__emulator"):
        return "admin"
    if path.startswith("/services/oauth2/token") or path.startswith("/services/Soap/u"):
        return "login"
    if path.startswith("/services/async/"):
        return _async_category(method, path)
    if not path.startswith("/services/data/v"):
        return "other"
    rest = path.split("/", 4)[4] if path.count("/") >= 4 else ""
    if rest.startswith("jobs/query"):
        if rest.endswith("/results"):
            return "bulk2_results"
        if rest.endswith("/resultPages"):
            return "bulk2_result_pages"
        if method == "POST":
            return "bulk2_create"
        return "bulk2_job"
    if rest.startswith("query") or rest.startswith("queryAll"):
        return "query"
    if rest.startswith("limits"):
        return "limits"
    if rest.startswith("sobjects"):
        if rest.endswith("/describe") or rest == "sobjects" or rest == "sobjects/":
            return "describe"
        parts = rest.strip("/").split("/")
        if len(parts) == 4:
            return "blob"
        if len(parts) == 3 and parts[2] in ("updated", "deleted"):
            return "replication"
        return "record"
    return "rest"


def _async_category(method: str, path: str) -> str:
    """Bulk API 1.0 (``/services/async/{version}/...``) kinds of request."""
    parts = path.strip("/").split("/")[3:]  # after services/async/{version}
    if len(parts) <= 1:
        return "bulk1_create" if method == "POST" and parts == ["job"] else "bulk1_job"
    if len(parts) == 2:
        return "bulk1_job"
    if len(parts) == 3:
        return "bulk1_batch_create" if method == "POST" else "bulk1_batch"
    if len(parts) >= 6:
        return "bulk1_results"
    if len(parts) == 5 and parts[4] == "result":
        return "bulk1_result_list"
    return "bulk1_batch"
