"""Core dataclasses shared by every stage (no I/O).

The repository stores these inside encrypted snapshot manifests (see ``docs/FORMAT.md``).
Each class converts to and from plain JSON data with ``to_dict`` / ``from_dict``; the
manifest format version covers all of them, so a field added here is a format change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SnapshotKind = Literal["full", "incremental"]


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


@dataclass(frozen=True)
class Cursor:
    """Incremental high-water mark of one object; it moves only when its manifest commits.

    ``last`` is the highest ``field`` value captured (ISO 8601), ``ids_at_last`` the Ids captured at
    exactly that value (dropped at the boundary of the next, closed-start window).
    """

    field: str
    last: str
    ids_at_last: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "last": self.last, "ids_at_last": list(self.ids_at_last)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cursor:
        return cls(field=str(data["field"]), last=str(data["last"]), ids_at_last=tuple(data["ids_at_last"]))


@dataclass
class ObjectEntry:
    """What one job captured of one Salesforce object."""

    chunks: list[ChunkRef] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    cursor: Cursor | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    blobs: list[BlobRef] = field(default_factory=list)
    deleted_ids_chunks: list[ChunkRef] = field(default_factory=list)
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunks": [c.to_dict() for c in self.chunks],
            "rows": self.rows,
            "bytes": self.bytes,
            "cursor": self.cursor.to_dict() if self.cursor else None,
            "errors": list(self.errors),
            "api_calls": dict(self.api_calls),
            "blobs": [b.to_dict() for b in self.blobs],
            "deleted_ids_chunks": [c.to_dict() for c in self.deleted_ids_chunks],
            "duration_seconds": self.duration_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectEntry:
        cursor = data.get("cursor")
        return cls(
            chunks=[ChunkRef.from_dict(c) for c in data.get("chunks", [])],
            rows=int(data.get("rows", 0)),
            bytes=int(data.get("bytes", 0)),
            cursor=Cursor.from_dict(cursor) if cursor else None,
            errors=list(data.get("errors", [])),
            api_calls={str(k): int(v) for k, v in data.get("api_calls", {}).items()},
            blobs=[BlobRef.from_dict(b) for b in data.get("blobs", [])],
            deleted_ids_chunks=[ChunkRef.from_dict(c) for c in data.get("deleted_ids_chunks", [])],
            duration_seconds=float(data.get("duration_seconds", 0.0)),
        )

    def referenced_names(self) -> list[str]:
        """Every ``chunks/`` object this entry needs: chunks, deletion chunks and blobs."""
        return (
            [c.name for c in self.chunks]
            + [c.name for c in self.deleted_ids_chunks]
            + [b.name for b in self.blobs]
        )


@dataclass
class Manifest:
    """The snapshot of one job: written last, and the only commit point of a job.

    ``org`` and ``job_id`` name the object (``snapshots/<org>/<job_id>.json.enc``); both are
    restricted to ``[A-Za-z0-9._-]``. ``cycle_id`` groups a full job with its incrementals (the
    unit of retention in ``prune``).
    """

    org: str
    job_id: str
    created_at: datetime
    kind: SnapshotKind
    cycle_id: str
    objects: dict[str, ObjectEntry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "job_id": self.job_id,
            "created_at": _dt_to_str(self.created_at),
            "kind": self.kind,
            "cycle_id": self.cycle_id,
            "objects": {name: entry.to_dict() for name, entry in sorted(self.objects.items())},
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        kind = data["kind"]
        if kind not in ("full", "incremental"):
            raise ValueError(f"unknown snapshot kind {kind!r}")
        return cls(
            org=str(data["org"]),
            job_id=str(data["job_id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            kind=kind,
            cycle_id=str(data["cycle_id"]),
            objects={str(k): ObjectEntry.from_dict(v) for k, v in data.get("objects", {}).items()},
            extra=dict(data.get("extra", {})),
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


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot as seen from a listing (no decryption needed)."""

    org: str
    job_id: str
    name: str
    sealed_bytes: int


# --- the job vocabulary: one definition, used by the catalog, the policies and the jobs ---------


class JobKind(enum.StrEnum):
    """Full (opens a cycle) or incremental."""

    FULL = "full"
    INCREMENTAL = "incremental"


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
