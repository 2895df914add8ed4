"""The state of one backup job on the driver, and what it reports: per-object reports, progress
events and the job's result (shared by :mod:`engine.jobs.runner`, :mod:`engine.jobs.driver` and
:mod:`engine.jobs.commit`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.clock import Clock
from engine.config import Settings
from engine.errors import SfvaultError
from engine.extract.usage import ApiCalls, ApiUsage, api_calls_of
from engine.jobs.deletes import DeleteLog
from engine.jobs.planning import BackupRequest, JobOptions
from engine.jobs.tasks import PartitionResult
from engine.model import Cursor, ExtractionChoice, ObjectSkipped


@dataclass
class ObjectReport:
    name: str
    mode: str
    state: str = "pending"
    partitions: int = 0
    partitions_done: int = 0
    records: int = 0
    deleted: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    bulk_jobs: int = 0
    error_code: str | None = None
    error_message: str | None = None
    started: float | None = None
    finished: float | None = None
    reason: str = ""
    files_unavailable: int = 0
    """File bodies Salesforce answered with 403/404 although their record was queried."""
    warning_code: str | None = None
    """A warning on an object that succeeded (SFV-805: only files shared with the user)."""
    warning_message: str | None = None
    extraction: ExtractionChoice | None = None
    """Through which API the object is read and why, once it is sized (decision 0028)."""

    @property
    def path(self) -> str:
        """``bulk2``, ``bulk1`` or ``rest``; empty before the object is sized."""
        return self.extraction.path if self.extraction is not None else ""


@dataclass
class BackupResult:
    job_id: str
    org: str
    kind: str
    cycle_id: str
    state: str
    objects: dict[str, ObjectReport]
    usage: dict[str, Any]
    duration_s: float
    snapshot: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def records(self) -> int:
        return sum(o.records for o in self.objects.values() if o.state == "succeeded")

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.objects.values() if o.state == "succeeded")

    @property
    def calls_by_api(self) -> ApiCalls:
        """The job's API calls by API (:func:`engine.model.api_calls_of`, the one definition)."""
        return api_calls_of(self.usage)

    @property
    def api_calls(self) -> int:
        """Calls that counted against the org's ``DailyApiRequests``."""
        return self.calls_by_api.total


@dataclass(frozen=True)
class Progress:
    """A progress report: one object's state and the job's totals."""

    kind: str  # "planned" | "partition" | "object" | "done"
    job_id: str
    object: str | None
    objects: dict[str, ObjectReport]


ProgressFn = Callable[[Progress], None]


def err_fields(err: BaseException) -> tuple[str, str]:
    if isinstance(err, SfvaultError):
        return err.code, err.message
    return "SFV-000", f"{type(err).__name__}: {err}"


def calls_of(usage: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in usage.get("calls", {}).items()}


class JobRun:
    """State of one running job on the driver."""

    def __init__(
        self,
        *,
        settings: Settings,
        dask: Any,
        org_name: str,
        request: BackupRequest,
        options: JobOptions,
        clock: Clock,
        on_progress: ProgressFn | None,
        cancel: threading.Event | None,
        trigger: str,
    ) -> None:
        self.settings = settings
        self.dask = dask
        self.org_name = org_name
        self.request = request
        self.options = options
        self.clock = clock
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self.trigger = trigger
        self.usage = ApiUsage()
        self.reports: dict[str, ObjectReport] = {}
        self.results: dict[str, list[PartitionResult]] = {}
        self.cursors: dict[str, Cursor] = {}
        """Closing cursors of the objects that succeeded, merged as each finishes (kept as they are:
        a cursor's boundary can hold ~100k entries, so no plain-data round trip before the commit)."""
        self.delete_log = DeleteLog()
        """The delete log's answers (deletion chunks, where each object's next window starts)."""
        self.started = time.monotonic()
        self.job_id = ""
        self.submitted: list[Any] = []
        self.warnings_read: Future[dict[str, tuple[str, str]]] | None = None  # object -> (code, message)
        self.lane: Literal["full", "incremental"] = "incremental"
        """The org's lock lane this job holds: its kind, decided before the lock (decision 0016)."""
        self.lane_at = self.clock.now()
        """The instant the lane was decided; the cycle rule is asked at it again by ``decide``."""
        self.fulls_beside: tuple[str, ...] = ()
        self.not_backed_up: tuple[ObjectSkipped, ...] = ()
        """The org's objects that scope left out, with their typed reasons (``JobRecord.not_backed_up``)."""
        """New-cycle fulls in flight when this incremental took its lane (``JobRecord.fulls_beside``)."""

    def emit(self, kind: str, obj: str | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(kind, self.job_id, obj, self.reports))
