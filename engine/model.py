"""Core dataclasses shared by every stage (no I/O).

The repository stores these inside encrypted snapshot manifests (see ``docs/FORMAT.md``).
Each class converts to and from plain JSON data with ``to_dict`` / ``from_dict``; the
manifest format version covers all of them, so a field added here is a format change.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, Protocol, get_args

SnapshotKind = Literal["full", "incremental", "recovery_point"]
ObjectMode = Literal["full", "incremental"]
Trigger = Literal["manual", "scheduled"]
ExtractionPath = Literal["bulk2", "bulk1", "rest"]
ExtractionReason = Literal[
    "configured", "bulk_unsupported", "small", "incremental_window", "pk_chunking", "id_ranges"
]
"""Why a job read an object through its path (:class:`ExtractionChoice`, decision 0028):
``configured`` the org's ``extraction_strategy`` names the path; ``bulk_unsupported`` Bulk API
cannot query the object (REST ``queryAll``); ``small`` the object (or window) fits a REST page or
two; ``incremental_window`` an incremental window reads a slice of the object, which PK chunking
(it chunks the whole table) would not serve cheaply; ``pk_chunking`` a large object read by one
Bulk API 1.0 job, PK-chunked; ``id_ranges`` Bulk API 2.0 query jobs over Id ranges."""
SkipReason = Literal[
    "excluded",
    "not_selected",
    "not_queryable",
    "not_retrieveable",
    "event",
    "query_restricted",
    "feed_off",
    "share_off",
    "history_off",
]
"""Why an object of the org's describeGlobal is not in a job (:class:`ObjectSkipped`)."""


def _dt_to_str(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("timestamps in the repository must be timezone-aware (UTC)")
    return value.isoformat()


@dataclass(frozen=True)
class ChunkRef:
    """A sealed Parquet chunk written once to ``chunks/<aa>/<name>``.

    Invariants:
        * ``name`` is the lowercase hex of HMAC-SHA256(id_key, parquet bytes) (64 characters).
        * ``sealed_bytes`` is the exact object size in the repository and ``sha256`` the hex
          SHA-256 of those sealed bytes, so a check can find bit rot without decrypting.
        * rows are sorted by ``Id`` inside the chunk; ``min_id``/``max_id`` bound them.
    """

    name: str
    object: str
    rows: int
    plain_bytes: int
    sealed_bytes: int
    sha256: str
    min_id: str | None = None
    max_id: str | None = None
    max_modstamp: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object": self.object,
            "rows": self.rows,
            "plain_bytes": self.plain_bytes,
            "sealed_bytes": self.sealed_bytes,
            "sha256": self.sha256,
            "min_id": self.min_id,
            "max_id": self.max_id,
            "max_modstamp": self.max_modstamp,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkRef:
        return cls(
            name=str(data["name"]),
            object=str(data["object"]),
            rows=int(data["rows"]),
            plain_bytes=int(data["plain_bytes"]),
            sealed_bytes=int(data["sealed_bytes"]),
            sha256=str(data["sha256"]),
            min_id=data.get("min_id"),
            max_id=data.get("max_id"),
            max_modstamp=data.get("max_modstamp"),
        )


@dataclass(frozen=True)
class BlobRef:
    """A sealed file body (attachment, document ...), stored like a chunk and deduplicated by content.

    ``name`` is HMAC-SHA256(id_key, body); the same body is stored once however often it is referenced.
    """

    name: str
    plain_bytes: int
    sealed_bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plain_bytes": self.plain_bytes,
            "sealed_bytes": self.sealed_bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlobRef:
        return cls(
            name=str(data["name"]),
            plain_bytes=int(data["plain_bytes"]),
            sealed_bytes=int(data["sealed_bytes"]),
            sha256=str(data["sha256"]),
        )


SETTLED = ""
"""The digest of a boundary entry read at least ``lag`` after its timestamp (by Salesforce's clock):
under the lag assumption no other version with that Id and timestamp can appear any more, so the
pair alone identifies the captured version (the boundary task can check it by Id, decision 0009)."""


_pair = itemgetter(0, 1)
"""``(Id, ts)`` of an ``(Id, ts, digest)`` triple."""


@dataclass(frozen=True)
class Cursor:
    """Where the last committed extract of one object stopped; it moves only when its manifest commits.

    The one cursor type of the repository: the manifest keeps it per object
    (:attr:`ObjectEntry.cursor`), the extract stage's trackers (``engine.extract.cursor``) read and
    produce it, and planning picks the next window from it.

    Attributes:
        field: the timestamp column (``SystemModstamp``, else ``LastModifiedDate``...).
        last: the highest timestamp captured so far (UTC), None before the first extract.
        seen: ``(Id, timestamp)`` pairs captured with ``timestamp >= last - lag``.
        truncated: ``seen`` was capped; a later window may return a few duplicates.
        digests: ``(Id, timestamp, digest)`` of the captured row versions of ``seen``
            (``engine.extract.digest.row_digests``; several when one record had versions of equal timestamp).
            A pair of ``seen`` without any digest was written by an older version: it matches
            only rows whose caller has no values to digest (see :meth:`captured`).
        deletes_through: where the object's next delete-log window starts (the delete log's
            ``latestDateCovered``, or just before the job's start when the object was read in full
            or swept; decision 0010). None: not recorded; the next incremental sweeps its Ids.
    """

    field: str
    last: datetime | None = None
    seen: frozenset[tuple[str, datetime]] = frozenset()
    truncated: bool = False
    digests: frozenset[tuple[str, datetime, str]] = frozenset()
    deletes_through: datetime | None = None

    def window_start(self, lag: timedelta) -> datetime | None:
        """The closed start of the next window, ``last - lag`` (None: extract everything)."""
        return None if self.last is None else self.last - lag

    def captured(self, id_: str, ts: datetime, digest: str | None) -> bool:
        """Whether the row version ``(id_, ts)`` with values of ``digest`` was captured.

        ``digest`` None (a caller without the row's values) matches by Id and timestamp alone.
        """
        if (id_, ts) not in self.seen:
            return False
        return digest is None or (id_, ts, digest) in self.digests or (id_, ts, SETTLED) in self.digests

    @property
    def settled(self) -> bool:
        """Every boundary pair is :data:`SETTLED`: comparing Id and timestamp is exact."""
        return all((i, t, SETTLED) in self.digests for i, t in self.seen)

    def entries(self) -> list[tuple[str, datetime, str | None]]:
        """The boundary as ``(Id, ts, digest)`` triples, sorted (a pair without a digest: None)."""
        seen = self.seen
        out: list[tuple[str, datetime, str | None]] = [d for d in self.digests if _pair(d) in seen]
        # a boundary after a burst of changes holds tens of thousands of pairs: C-level set
        # arithmetic and a plain tuple sort when every pair has a digest (the usual case)
        missing = seen.difference(map(_pair, out))
        if not missing:
            out.sort()  # every digest is a str here: tuples compare as they are
            return out
        out.extend((i, t, None) for i, t in missing)
        return sorted(out, key=lambda e: (e[0], e[1], e[2] or ""))

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``digests`` is a list parallel to ``seen`` (null where a pair has none; left
        out when no pair has one), so a reader that knows only ``seen`` still reads the pairs."""
        # rows changed together share timestamps: format each distinct one once
        text = {t: t.isoformat() for t in {t for _, t in self.seen}}
        rows = [(i, text[t], d) for i, t, d in self.entries()]
        out: dict[str, Any] = {
            "field": self.field,
            "last": None if self.last is None else self.last.isoformat(),
            "seen": [[i, t] for i, t, _ in rows],  # JSON arrays once encoded
            "truncated": self.truncated,
            **({} if self.deletes_through is None else {"deletes_through": self.deletes_through.isoformat()}),
        }
        if any(d is not None for _, _, d in rows):  # a cursor without digests keeps its old shape
            out["digests"] = [d for _, _, d in rows]
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Cursor:
        parsed: dict[str, datetime] = {}  # rows changed together share timestamps: parse each once

        def stamp(text: str) -> datetime:
            ts = parsed.get(text)
            if ts is None:
                ts = parsed[text] = datetime.fromisoformat(text)
            return ts

        pairs = [(i, stamp(t)) for i, t in d["seen"]]
        digests = d.get("digests") or [None] * len(pairs)  # absent: written before digests
        if len(digests) != len(pairs):
            raise ValueError("cursor: 'digests' is not parallel to 'seen'")
        return Cursor(
            field=d["field"],
            last=None if d["last"] is None else datetime.fromisoformat(d["last"]),
            seen=frozenset(pairs),
            truncated=bool(d["truncated"]),
            digests=frozenset((i, t, h) for (i, t), h in zip(pairs, digests, strict=True) if h is not None),
            deletes_through=(
                datetime.fromisoformat(d["deletes_through"]) if d.get("deletes_through") else None
            ),
        )


@dataclass(frozen=True)
class ObjectError:
    """Why one object failed in a job (its entry then holds no data)."""

    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectError:
        return cls(code=str(data["code"]), message=str(data["message"]))


@dataclass(frozen=True)
class ObjectWarning:
    """A warning on an object that succeeded (SFV-805: only the files shared with the backup user)."""

    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectWarning:
        return cls(code=str(data["code"]), message=str(data["message"]))


@dataclass(frozen=True)
class ExtractionChoice:
    """How a job read one object, and why (``extraction_strategy = auto`` decides per object by
    its size and what it supports; decision 0028).

    Attributes:
        path: ``bulk2`` (Bulk API 2.0 jobs over Id ranges), ``bulk1`` (Bulk API 1.0, PK chunking)
            or ``rest`` (query paging).
        reason: the rule that chose it.
        rows: the object's (or window's) row count the choice was made on; None when not counted.
    """

    path: ExtractionPath
    reason: ExtractionReason
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionChoice:
        path, reason = data["path"], data["reason"]
        if path not in ("bulk2", "bulk1", "rest"):
            raise ValueError(f"unknown extraction path {path!r}")
        if reason not in EXTRACTION_REASONS:
            raise ValueError(f"unknown extraction reason {reason!r}")
        rows = data.get("rows")
        return cls(path=path, reason=reason, rows=None if rows is None else int(rows))


EXTRACTION_REASONS: tuple[str, ...] = get_args(ExtractionReason)
SKIP_REASONS: tuple[str, ...] = get_args(SkipReason)


@dataclass(frozen=True)
class ObjectSkipped:
    """An object of the org that a job did not back up, with its typed reason and the words."""

    name: str
    reason: SkipReason
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectSkipped:
        reason = data["reason"]
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")
        return cls(name=str(data["name"]), reason=reason, message=str(data.get("message") or ""))


@dataclass
class ObjectEntry:
    """What one job captured of one Salesforce object, and how.

    Invariants:
        * ``errors`` non-empty: the object failed; ``chunks``, ``deleted_ids_chunks`` and ``blobs``
          are empty and ``rows`` / ``bytes`` count what was read before it failed (none kept).
        * captured (good data for recovery points and the next job's cursor) = no ``errors``.
        * ``swept``: the job listed every live Id of the object (``<Object>#ids`` chunks in
          ``deleted_ids_chunks``); an Id missing from them was hard-deleted.
        * ``cursor`` is the exact closing boundary state, the next incremental's start.
    """

    chunks: list[ChunkRef] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    cursor: Cursor | None = None
    errors: list[ObjectError] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    """HTTP calls by kind (``rest``, ``bulk2_job``, ``bulk2_results_page`` ...), plus
    ``bulk2_jobs_created`` and ``bulk2_pages`` as the catalog counts them."""
    blobs: list[BlobRef] = field(default_factory=list)
    deleted_ids_chunks: list[ChunkRef] = field(default_factory=list)
    duration_seconds: float = 0.0
    mode: ObjectMode | None = None
    """How the job extracted the object (for a failed object: how it tried to); None = as the
    manifest's ``kind`` says."""
    swept: bool = False
    warning: ObjectWarning | None = None
    files_unavailable: int = 0
    """File bodies Salesforce answered with 403/404 although their record was read."""
    sweep_reason: ObjectWarning | None = None
    """Why the object's Ids were swept in this job although it is not the periodic sweep: the
    delete log could not serve its window (SFV-420..423, decision 0010)."""
    log_deletions: int | None = None
    """Deletions the delete log listed for the object's window (None: the log was not asked)."""
    extraction: ExtractionChoice | None = None
    """Through which API the job read the object and why (None: not recorded, or not planned)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunks": [c.to_dict() for c in self.chunks],
            "rows": self.rows,
            "bytes": self.bytes,
            "cursor": self.cursor.to_dict() if self.cursor else None,
            "errors": [e.to_dict() for e in self.errors],
            "api_calls": dict(self.api_calls),
            "blobs": [b.to_dict() for b in self.blobs],
            "deleted_ids_chunks": [c.to_dict() for c in self.deleted_ids_chunks],
            "duration_seconds": self.duration_seconds,
            "mode": self.mode,
            "swept": self.swept,
            "warning": self.warning.to_dict() if self.warning else None,
            "files_unavailable": self.files_unavailable,
            # decision 0010's keys only when set: documents without them read back the same
            **({"sweep_reason": self.sweep_reason.to_dict()} if self.sweep_reason else {}),
            **({} if self.log_deletions is None else {"log_deletions": self.log_deletions}),
            **({"extraction": self.extraction.to_dict()} if self.extraction else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectEntry:
        cursor, warning, mode = data.get("cursor"), data.get("warning"), data.get("mode")
        if mode not in (None, "full", "incremental"):
            raise ValueError(f"unknown object mode {mode!r}")
        return cls(
            chunks=[ChunkRef.from_dict(c) for c in data.get("chunks", [])],
            rows=int(data.get("rows", 0)),
            bytes=int(data.get("bytes", 0)),
            cursor=Cursor.from_dict(cursor) if cursor else None,
            errors=[ObjectError.from_dict(e) for e in data.get("errors", [])],
            api_calls={str(k): int(v) for k, v in data.get("api_calls", {}).items()},
            blobs=[BlobRef.from_dict(b) for b in data.get("blobs", [])],
            deleted_ids_chunks=[ChunkRef.from_dict(c) for c in data.get("deleted_ids_chunks", [])],
            duration_seconds=float(data.get("duration_seconds", 0.0)),
            mode=mode,
            swept=bool(data.get("swept", False)),
            warning=ObjectWarning.from_dict(warning) if warning else None,
            files_unavailable=int(data.get("files_unavailable", 0)),
            sweep_reason=ObjectWarning.from_dict(data["sweep_reason"]) if data.get("sweep_reason") else None,
            log_deletions=None if data.get("log_deletions") is None else int(data["log_deletions"]),
            extraction=ExtractionChoice.from_dict(data["extraction"]) if data.get("extraction") else None,
        )

    @property
    def captured(self) -> bool:
        """The entry holds good data of the object (it did not fail)."""
        return not self.errors

    def referenced_names(self) -> list[str]:
        """Every ``chunks/`` object this entry needs: chunks, deletion chunks and blobs."""
        return (
            [c.name for c in self.chunks]
            + [c.name for c in self.deleted_ids_chunks]
            + [b.name for b in self.blobs]
        )


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else _dt_to_str(value)


def _parse_dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class CyclePosition:
    """Where a job stands in its cycle: when the cycle started (its full job committed) and the
    job's index in it (the full job is 0). The next job reads it instead of the cycle's older
    manifests."""

    started_at: datetime
    index: int

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": _dt_to_str(self.started_at), "index": self.index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CyclePosition:
        return cls(started_at=datetime.fromisoformat(data["started_at"]), index=int(data["index"]))


# --- API calls: one meaning (decision 0027; engine.extract.usage counts them) ---------------

API_OF_KIND: dict[str, Literal["rest", "bulk2", "bulk1"]] = {
    "rest": "rest",
    "blob": "rest",
    "bulk2_job": "bulk2",
    "bulk2_results_page": "bulk2",
    "bulk1_job": "bulk1",
    "bulk1_results": "bulk1",
}
"""The API each counted kind belongs to; a kind not listed here is not an allowance call."""
BULK1_BATCHES = "bulk1_batches"
"""The key of the Bulk API 1.0 batch counter in ``calls`` (an allocation, not an HTTP request)."""


@dataclass(frozen=True)
class ApiCalls:
    """A job's (or an object's) calls against ``DailyApiRequests`` by API, and its Bulk API 1.0
    batches (``DailyBulkApiBatches``). :attr:`total` is *the* "API calls" figure."""

    rest: int = 0
    bulk2: int = 0
    bulk1: int = 0
    bulk1_batches: int = 0

    @property
    def total(self) -> int:
        """Calls that count against the org's ``DailyApiRequests`` (batches are not calls)."""
        return self.rest + self.bulk2 + self.bulk1

    def __add__(self, other: ApiCalls) -> ApiCalls:
        return ApiCalls(
            self.rest + other.rest, self.bulk2 + other.bulk2, self.bulk1 + other.bulk1,
            self.bulk1_batches + other.bulk1_batches,
        )  # fmt: skip


class CallColumns(Protocol):
    """A row that records calls by API (the catalog's job objects and usage ledger, reports)."""

    @property
    def rest_calls(self) -> int: ...
    @property
    def bulk2_calls(self) -> int: ...
    @property
    def bulk1_calls(self) -> int: ...


def api_calls_total(row: CallColumns) -> int:
    """The "API calls" figure of a row that stores calls by API (:attr:`ApiCalls.total`)."""
    return ApiCalls(row.rest_calls, row.bulk2_calls, row.bulk1_calls).total


@dataclass(frozen=True, kw_only=True)
class CallCounts:
    """The six call and usage counters a job, an object or a span of the usage ledger records:
    calls by API (``engine.model.api_calls_of``; :attr:`api_calls` is their sum), Bulk API 2.0
    jobs and result pages, and Bulk API 1.0 batches (not calls). The one field list behind
    ``engine.catalog.usage.UsageTotals``, ``engine.catalog.jobs.ObjectResult`` and the job
    report's rows (``api.reports``). Keyword-only, so a subclass keeps its own fields positional;
    the order is the usage ledger's."""

    rest_calls: int = 0
    bulk2_jobs: int = 0
    bulk2_pages: int = 0
    bulk2_calls: int = 0
    bulk1_calls: int = 0
    bulk1_batches: int = 0

    @property
    def api_calls(self) -> int:
        """Calls that count against ``DailyApiRequests`` (REST + Bulk 2.0 + Bulk 1.0)."""
        return api_calls_total(self)


CALL_COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CallCounts))
"""The names of :class:`CallCounts`' fields, in order (also the catalog's column names)."""


def call_counts(row: object) -> dict[str, int]:
    """The :data:`CALL_COUNT_FIELDS` of ``row`` (a catalog row or a :class:`CallCounts`), by name."""
    return {name: getattr(row, name) for name in CALL_COUNT_FIELDS}


def api_calls_of(usage: Mapping[str, Any]) -> ApiCalls:
    """The one definition of "API calls", from a usage record: either a calls-by-kind mapping
    (``{"rest": 4, "bulk2_job": 3, ...}``, e.g. a manifest entry's ``api_calls``) or a usage
    snapshot with such a mapping under ``calls``. Keys that are no request kind (``login``,
    ``versions``, ``refused``, and the catalog's ``bulk2_jobs_created`` / ``bulk2_pages``
    copies in manifests) are left out."""
    raw = usage.get("calls")
    calls: Mapping[str, Any] = raw if isinstance(raw, Mapping) else usage
    by_api = {"rest": 0, "bulk2": 0, "bulk1": 0}
    for kind, n in calls.items():
        api = API_OF_KIND.get(str(kind))
        if api is not None:
            by_api[api] += int(n)
    return ApiCalls(**by_api, bulk1_batches=int(calls.get(BULK1_BATCHES, 0)))


@dataclass(frozen=True)
class JobUsage:
    """The Salesforce API usage of a whole job (``engine.extract.usage.ApiUsage.snapshot``)."""

    calls: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    """Calls that count against the org's ``DailyApiRequests`` (as written; readers use
    :meth:`calls_by_api`, which recomputes it from ``calls``)."""
    bytes_received: int = 0
    result_bytes: int = 0
    org_used: int | None = None
    org_max: int | None = None
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)
    """``{name: (max, remaining)}`` from the last ``/limits`` read."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "api_calls": self.api_calls,
            "bytes_received": self.bytes_received,
            "result_bytes": self.result_bytes,
            "org_used": self.org_used,
            "org_max": self.org_max,
            "limits": {k: list(v) for k, v in sorted(self.limits.items())},
        }

    def calls_by_api(self) -> ApiCalls:
        """The job's API calls by API and their total (:func:`api_calls_of`)."""
        return api_calls_of(self.calls)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobUsage:
        def opt_int(v: Any) -> int | None:
            return None if v is None else int(v)

        return cls(
            calls={str(k): int(v) for k, v in data.get("calls", {}).items()},
            api_calls=int(data.get("api_calls", 0)),
            bytes_received=int(data.get("bytes_received", 0)),
            result_bytes=int(data.get("result_bytes", 0)),
            org_used=opt_int(data.get("org_used")),
            org_max=opt_int(data.get("org_max")),
            limits={str(k): (int(v[0]), int(v[1])) for k, v in data.get("limits", {}).items()},
        )


@dataclass(frozen=True)
class OrgFacts:
    """What the catalog knew of the org when the job ran: enough to recreate its row."""

    instance_url: str | None = None
    sf_org_id: str | None = None
    time_zone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        return {"instance_url": self.instance_url, "sf_org_id": self.sf_org_id, "time_zone": self.time_zone}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrgFacts:
        return cls(
            instance_url=data.get("instance_url"),
            sf_org_id=data.get("sf_org_id"),
            time_zone=str(data.get("time_zone") or "UTC"),
        )


@dataclass(frozen=True)
class JobRecord:
    """The job that wrote a manifest, as the catalog recorded it (``catalog rebuild`` reads it back).

    The job's kind and cycle id are the manifest's own top-level fields (the repository's prune
    needs the cycle without knowing jobs); per-object facts (mode, cursor, sweep, errors,
    warning, files unavailable) live in each :class:`ObjectEntry`. Every field is None in a
    manifest upgraded from format 1, which did not record it.

    Attributes:
        trigger: ``manual`` (CLI, API "back up now") or ``scheduled`` (the scheduler).
        queued_at, started_at: when the job was queued (the catalog's ``created_at``) and started.
        finished_at: when the job's result was fixed: the commit time, the manifest's
            ``created_at``.
        scheduled_for: the schedule slot of a scheduled job.
        cycle: the job's position in its cycle.
        requested_objects: the objects asked for (sorted), None = every object in scope.
        error: the job's own error (a partial job: its first failure), as the catalog shows it.
        usage: the job's API usage.
        org: the org's facts, to recreate its catalog row.
        fulls_beside: the new-cycle full jobs in flight when this (incremental) job planned, by
            job id; a full whose lock did not carry its id yet is named by the second it took its
            lock (``YYYYmmddTHHMMSSZ``; its id, made later, sorts after it). Such a full may
            commit after this job although its id sorts before it, so a planner reading the
            manifests newest first reads back past them (decision 0016). Written only when set.
        not_backed_up: the objects of the org's describeGlobal the job left out, each with its
            typed reason (decision 0028); every other object has an entry. Written only when set.
    """

    trigger: Trigger | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    scheduled_for: datetime | None = None
    cycle: CyclePosition | None = None
    requested_objects: tuple[str, ...] | None = None
    error: ObjectError | None = None
    usage: JobUsage = field(default_factory=JobUsage)
    org: OrgFacts | None = None
    fulls_beside: tuple[str, ...] = ()
    not_backed_up: tuple[ObjectSkipped, ...] = ()
    recovery_point: dict[str, Any] | None = None
    """A ``recovery_point`` job (decision 0026): ``at`` (the instant), and per object the backup
    job it starts from (``base_job``), the replay window's start and the change events applied
    (``events``, ``segments``). Written only when set."""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "trigger": self.trigger,
            "queued_at": _opt_dt(self.queued_at),
            "started_at": _opt_dt(self.started_at),
            "finished_at": _opt_dt(self.finished_at),
            "scheduled_for": _opt_dt(self.scheduled_for),
            "cycle": self.cycle.to_dict() if self.cycle else None,
            "requested_objects": list(self.requested_objects) if self.requested_objects is not None else None,
            "error": self.error.to_dict() if self.error else None,
            "usage": self.usage.to_dict(),
            "org": self.org.to_dict() if self.org else None,
        }
        if self.fulls_beside:
            doc["fulls_beside"] = list(self.fulls_beside)
        if self.not_backed_up:
            doc["not_backed_up"] = [o.to_dict() for o in self.not_backed_up]
        if self.recovery_point is not None:
            doc["recovery_point"] = self.recovery_point
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        trigger = data.get("trigger")
        if trigger not in (None, "manual", "scheduled"):
            raise ValueError(f"unknown job trigger {trigger!r}")
        cycle, requested, error, org = (data.get(k) for k in ("cycle", "requested_objects", "error", "org"))
        return cls(
            trigger=trigger,
            queued_at=_parse_dt(data.get("queued_at")),
            started_at=_parse_dt(data.get("started_at")),
            finished_at=_parse_dt(data.get("finished_at")),
            scheduled_for=_parse_dt(data.get("scheduled_for")),
            cycle=CyclePosition.from_dict(cycle) if cycle else None,
            requested_objects=tuple(str(o) for o in requested) if requested is not None else None,
            error=ObjectError.from_dict(error) if error else None,
            usage=JobUsage.from_dict(data.get("usage") or {}),
            org=OrgFacts.from_dict(org) if org else None,
            fulls_beside=tuple(str(j) for j in data.get("fulls_beside") or ()),
            not_backed_up=tuple(ObjectSkipped.from_dict(o) for o in data.get("not_backed_up") or ()),
            recovery_point=data.get("recovery_point"),
        )


@dataclass
class Manifest:
    """The snapshot of one job: written last, and the only commit point of a job.

    ``org`` and ``job_id`` name the object (``snapshots/<org>/<job_id>.json.enc``); both are
    restricted to ``[A-Za-z0-9._-]``. ``cycle_id`` groups a full job with its incrementals (the
    unit of retention in ``prune``). ``created_at`` is the commit time. ``job`` is the typed
    record of the job that wrote it (trigger, times, cycle position, requested objects, usage);
    the per-object facts are in ``objects``.
    """

    org: str
    job_id: str
    created_at: datetime
    kind: SnapshotKind
    cycle_id: str
    objects: dict[str, ObjectEntry] = field(default_factory=dict)
    job: JobRecord = field(default_factory=JobRecord)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "job_id": self.job_id,
            "created_at": _dt_to_str(self.created_at),
            "kind": self.kind,
            "cycle_id": self.cycle_id,
            "objects": {name: entry.to_dict() for name, entry in sorted(self.objects.items())},
            "job": self.job.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        kind = data["kind"]
        if kind not in ("full", "incremental", "recovery_point"):
            raise ValueError(f"unknown snapshot kind {kind!r}")
        return cls(
            org=str(data["org"]),
            job_id=str(data["job_id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            kind=kind,
            cycle_id=str(data["cycle_id"]),
            objects={str(k): ObjectEntry.from_dict(v) for k, v in data.get("objects", {}).items()},
            job=JobRecord.from_dict(data.get("job") or {}),
        )

    def referenced_names(self) -> set[str]:
        """Every ``chunks/`` object name this snapshot needs."""
        names: set[str] = set()
        for entry in self.objects.values():
            names.update(entry.referenced_names())
        return names

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.objects.values())

    def cycle_position(self) -> CyclePosition | None:
        """The job's position in its cycle (None: an incremental of format 1 that did not say); a
        full job starts its cycle (index 0) when it commits."""
        if self.job.cycle is not None:
            return self.job.cycle
        return CyclePosition(self.created_at, 0) if self.kind == "full" else None


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot as seen from a listing (no decryption needed)."""

    org: str
    job_id: str
    name: str
    sealed_bytes: int


AsOf = Literal["this_job", "earlier_job", "absent"]
"""Where the data of an object in a job's recovery point comes from (:class:`ObjectAsOf`)."""


@dataclass(frozen=True)
class ObjectAsOf:
    """Which job an object's data in the recovery point of a job is as of.

    A recovery point holds each object as of the newest job of the cycle that captured it. When
    the job itself did not capture the object (the object failed in it, or an object-scoped job
    did not include it), the object is ``earlier_job`` and ``as_of_job`` names that job; when no
    job of the cycle captured it, it is ``absent`` (nothing of it is in the recovery point).
    ``error_code`` is the code the object failed with in the job, if it failed there.

    Derived from manifests or catalog rows when asked for; never stored in a manifest.
    """

    object: str
    as_of: AsOf
    as_of_job: str | None = None
    error_code: str | None = None

    @property
    def current(self) -> bool:
        """True when the object is as of the job itself."""
        return self.as_of == "this_job"

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "as_of": self.as_of, "as_of_job": self.as_of_job,
                "error_code": self.error_code}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectAsOf:
        as_of = data["as_of"]
        if as_of not in ("this_job", "earlier_job", "absent"):
            raise ValueError(f"unknown as_of {as_of!r}")
        job, code = data.get("as_of_job"), data.get("error_code")
        return cls(str(data["object"]), as_of, None if job is None else str(job),
                   None if code is None else str(code))  # fmt: skip


# --- the job vocabulary: one definition, used by the catalog, the policies and the jobs ---------


class JobKind(enum.StrEnum):
    """Full (opens a cycle), incremental, or a recovery point at a requested time (decision 0026:
    a snapshot plus committed change events, materialised as a job of its own cycle)."""

    FULL = "full"
    INCREMENTAL = "incremental"
    RECOVERY_POINT = "recovery_point"


def lane_of(kind: str, requested_objects: Collection[str] | None) -> JobKind:
    """The lane a job occupies in its org (decision 0016): ``full`` for a full of every object,
    else ``incremental`` (an object-scoped job is an incremental that may extract its objects in
    full). An org runs at most one active job per lane; the catalog enforces it with a unique index."""
    return JobKind.FULL if kind == JobKind.FULL and requested_objects is None else JobKind.INCREMENTAL


class JobTrigger(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class JobState(enum.StrEnum):
    """``queued → running → succeeded | partial | failed | cancelled``; ``skipped`` for a slot
    that did not run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def active(self) -> bool:
        """Queued or running: the job occupies the org."""
        return self in (JobState.QUEUED, JobState.RUNNING)

    @property
    def finished(self) -> bool:
        """Any end state (the opposite of :attr:`active`)."""
        return not self.active

    @property
    def committed(self) -> bool:
        """The job's snapshot manifest was written (some or all objects succeeded)."""
        return self in (JobState.SUCCEEDED, JobState.PARTIAL)

    @property
    def finished_and_ran(self) -> bool:
        """The job ran and is over (skipped jobs never ran)."""
        return self in (JobState.SUCCEEDED, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED)


class Role(enum.StrEnum):
    """API token roles: admin, operator, viewer."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
