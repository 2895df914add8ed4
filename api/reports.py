"""The job report as an XLSX workbook (PRODUCT.md "Job reports"; issue 7 "Jobs").

Two sheets: **Summary** (org, job, kind, trigger, state, times, totals and API usage) and
**Objects** (one row per object: state, records, size, chunks, duration, API calls and their split
into REST, Bulk API 2.0 and Bulk API 1.0 calls, Bulk API 2.0 jobs and result pages, Bulk API 1.0
batches, file bodies unavailable, error code and message, warning code and message;
a warning, e.g. SFV-805 "only files shared with the backup user were backed up", is on an object
that succeeded; then which job the object's data in the job's recovery point is as of: ``this
job``, ``earlier job`` with that job's id when the object failed here, or ``absent``). A partial
job's Summary says how many objects are as of an earlier job or absent, and that its exports
hold them so. Every error and warning code cell links to its section of
``docs/TROUBLESHOOTING.md`` (:data:`TROUBLESHOOTING_URL` plus the GitHub anchor of the heading
``## SFV-601 JobAlreadyRunning``, see :func:`troubleshooting_link`), where cause and fix are.

The builder is a pure function of plain data (:class:`ReportJob`, :class:`ReportObject`), so the
route reads the catalog in one short transaction and builds the workbook after it closed.
Times are written as naive UTC datetimes (Excel has no time zones); the headers say so.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

import engine.jobs.errors  # noqa: F401  (registers the job errors' codes for the links)
from engine.errors import all_error_classes
from engine.model import CallCounts

TROUBLESHOOTING_URL = "https://github.com/sfvault/sfvault/blob/main/docs/TROUBLESHOOTING.md"
"""Where error code cells link to; each code's section is an anchor on this page."""

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUMMARY_SHEET = "Summary"
OBJECTS_SHEET = "Objects"
OBJECT_COLUMNS = (
    "Object",
    "State",
    "Records",
    "Size (bytes)",
    "Chunks",
    "Duration (s)",
    "API calls",
    "REST calls",
    "Bulk 2.0 calls",
    "Bulk 1.0 calls",
    "Bulk 2.0 jobs",
    "Bulk 2.0 result pages",
    "Bulk 1.0 batches",
    "Files unavailable",
    "Error code",
    "Error message",
    "Warning code",
    "Warning message",
    "Data as of",
    "As of job",
)
AS_OF_TEXT = {"this_job": "this job", "earlier_job": "earlier job", "absent": "absent"}
"""The ``Data as of`` cell of each :class:`engine.model.ObjectAsOf` value."""
ERROR_CODE_COLUMN = OBJECT_COLUMNS.index("Error code") + 1
WARNING_CODE_COLUMN = OBJECT_COLUMNS.index("Warning code") + 1
_BOLD = Font(bold=True)


@dataclass(frozen=True, kw_only=True)
class ReportObject(CallCounts):
    """One object of the job (a catalog ``JobObject`` row); its calls and Bulk usage are the
    :class:`engine.model.CallCounts` fields, ``api_calls`` their "API calls" figure."""

    name: str
    state: str
    records: int
    bytes: int
    chunks: int
    duration_s: float
    error_code: str | None = None
    error_message: str | None = None
    files_unavailable: int = 0
    warning_code: str | None = None
    warning_message: str | None = None
    as_of: str | None = None
    """this_job, earlier_job or absent (None: the job committed nothing)."""
    as_of_job: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReportJob(CallCounts):
    """The job and its org, with the job's API usage (the usage ledger's sums, as
    :class:`engine.model.CallCounts` fields; ``api_calls`` is the CLI's, ``/usage``'s and the
    Data view's figure, decision 0027)."""

    org: str
    job_id: str
    kind: str
    trigger: str
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    records: int
    bytes: int
    metadata_items: int
    error_code: str | None = None
    error_message: str | None = None


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation other than ``-`` and
    ``_`` dropped, spaces turned into ``-``.

    ``SFV-601 JobAlreadyRunning`` → ``sfv-601-jobalreadyrunning``.
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@lru_cache(maxsize=1)
def _headings() -> dict[str, str]:
    """Code → heading text of its section (``SFV-601 JobAlreadyRunning``), from the error tree,
    which ``docs/TROUBLESHOOTING.md`` follows (a unit test keeps them aligned)."""
    out: dict[str, str] = {}
    for cls in all_error_classes():
        out.setdefault(cls.code, f"{cls.code} {cls.__name__}")
    return out


def troubleshooting_link(code: str) -> str:
    """The URL of ``code``'s section in the troubleshooting guide (the guide itself for a code
    this version does not know, e.g. one recorded by a newer sfvault)."""
    heading = _headings().get(code)
    return TROUBLESHOOTING_URL if heading is None else f"{TROUBLESHOOTING_URL}#{github_slug(heading)}"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def _link(cell: Cell, code: str | None) -> None:
    if code:
        cell.hyperlink = troubleshooting_link(code)
        cell.style = "Hyperlink"


def _fit(ws: Worksheet, widths: Sequence[int]) -> None:
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width


def _summary(ws: Worksheet, job: ReportJob, objects: Sequence[ReportObject]) -> None:
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = round((job.finished_at - job.started_at).total_seconds(), 3)
    failed = sum(1 for o in objects if o.state == "failed")
    succeeded = sum(1 for o in objects if o.state == "succeeded")
    rows: list[tuple[str, object]] = [
        ("Org", job.org),
        ("Job", job.job_id),
        ("Kind", job.kind),
        ("Trigger", job.trigger),
        ("State", job.state),
        ("Created (UTC)", _utc(job.created_at)),
        ("Start (UTC)", _utc(job.started_at)),
        ("End (UTC)", _utc(job.finished_at)),
        ("Duration (s)", duration),
        ("Objects", len(objects)),
        ("Objects succeeded", succeeded),
        ("Objects failed", failed),
        ("Objects with warnings", sum(1 for o in objects if o.warning_code)),
        ("Objects as of an earlier job", sum(1 for o in objects if o.as_of == "earlier_job")),
        ("Objects absent from the recovery point", sum(1 for o in objects if o.as_of == "absent")),
        ("Files unavailable", sum(o.files_unavailable for o in objects)),
        ("Records", job.records),
        ("Size (bytes)", job.bytes),
        ("Metadata items", job.metadata_items),
        ("API calls", job.api_calls),
        ("REST calls", job.rest_calls),
        ("Bulk 2.0 calls", job.bulk2_calls),
        ("Bulk 1.0 calls", job.bulk1_calls),
        ("Bulk 2.0 jobs", job.bulk2_jobs),
        ("Bulk 2.0 result pages", job.bulk2_pages),
        ("Bulk 1.0 batches", job.bulk1_batches),
        ("Error code", job.error_code),
        ("Error message", job.error_message),
    ]
    stale = [o for o in objects if o.as_of in ("earlier_job", "absent")]
    if stale:
        rows.append(("Note", f"{job.state} job: {len(stale)} object(s) were not backed up by this job; its "
                             "recovery point and exports hold them as of an earlier job (column "
                             "'As of job' of the Objects sheet) or not at all (absent)"))  # fmt: skip
    for label, value in rows:
        ws.append([label, value])
        ws.cell(row=ws.max_row, column=1).font = _BOLD
        if isinstance(value, datetime):
            ws.cell(row=ws.max_row, column=2).number_format = "yyyy-mm-dd hh:mm:ss"
        if label == "Error code":
            _link(ws.cell(row=ws.max_row, column=2), job.error_code)
    _fit(ws, (24, 48))


def _objects(ws: Worksheet, objects: Sequence[ReportObject]) -> None:
    ws.append(list(OBJECT_COLUMNS))
    for cell in ws[1]:
        cell.font = _BOLD
    ws.freeze_panes = "A2"
    for o in sorted(objects, key=lambda o: o.name):
        ws.append(
            [
                o.name, o.state, o.records, o.bytes, o.chunks, round(o.duration_s, 3), o.api_calls,
                o.rest_calls, o.bulk2_calls, o.bulk1_calls, o.bulk2_jobs, o.bulk2_pages, o.bulk1_batches,
                o.files_unavailable, o.error_code, o.error_message,
                o.warning_code, o.warning_message, AS_OF_TEXT.get(o.as_of or ""), o.as_of_job,
            ]
        )  # fmt: skip
        _link(ws.cell(row=ws.max_row, column=ERROR_CODE_COLUMN), o.error_code)
        _link(ws.cell(row=ws.max_row, column=WARNING_CODE_COLUMN), o.warning_code)
    _fit(ws, (32, 11, 12, 14, 8, 12, 10, 11, 14, 14, 13, 20, 16, 17, 12, 60, 14, 60, 12, 34))


def build_report(job: ReportJob, objects: Sequence[ReportObject]) -> bytes:
    """The XLSX workbook of one job: a Summary sheet and an Objects sheet (one row per object,
    by name)."""
    wb = Workbook()
    summary = wb.active
    assert summary is not None  # a new workbook always has one sheet
    summary.title = SUMMARY_SHEET
    _summary(summary, job, objects)
    _objects(wb.create_sheet(OBJECTS_SHEET), objects)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def report_filename(org: str, job_id: str) -> str:
    """``sfvault-<org>-<job>.xlsx``, with anything but ``[A-Za-z0-9._-]`` replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"sfvault-{org}-{job_id}.xlsx")
