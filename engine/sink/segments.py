"""Change event segments: sealed Parquet chunks of change rows, each committed by a segment manifest.

Continuous data protection (decision 0026) writes what the Pub/Sub API delivers for one object in
*segments*: the change rows of consecutive events (one row per record per event) are written as
one sealed chunk (``chunks/<aa>/<id>``, exactly like a backup chunk), then the segment manifest
``segments/<org>/<object>/<created>-<last replay id, hex>.json.enc`` is written. That manifest is the commit
point of the segment, and the newest one is the subscriber's only checkpoint (STYLE rule 7): a
crash before it leaves an unreferenced chunk for ``prune``; after it, the subscriber resumes after
its ``last_replay_id``, so an event is never written into two committed segments.

The manifest plaintext is UTF-8 JSON with sorted keys::

    {"format": "sfvault-segment", "version": 1, "org": ..., "object": ..., "topic": ...,
     "first_replay_id": HEX, "last_replay_id": HEX, "events": N, "rows": N,
     "commit_ts_min": ISO, "commit_ts_max": ISO, "created_at": ISO, "chunk": {ChunkRef} | null,
     "gaps": [{"change_type": ..., "record_ids": [...]}]}

sealed like a snapshot manifest (content type 3, id HMAC(id_key, "sfvault-name\\0" || path)), so a
manifest renamed to another position fails authentication. Replay ids are opaque bytes to
Salesforce; the name uses their hex, left-padded to 16 digits, so names sort in replay order for
ids of up to 8 bytes (what Salesforce sends today).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from engine.errors import FormatVersionError, ManifestInvalid, ObjectNotFound
from engine.model import ChunkRef
from engine.sink.backend import Handle, Kind
from engine.sink.crypto import ContentType, open_bytes, seal_bytes
from engine.sink.manifest import check_segment

SEGMENT_FORMAT = "sfvault-segment"
SEGMENT_VERSION = 1
SUFFIX = ".json.enc"
MAX_SEGMENT_MANIFEST_BYTES = 64 * 1024 * 1024


def replay_hex(replay_id: bytes) -> str:
    """A replay id as stored in a segment manifest: lower-case hex of its bytes."""
    return replay_id.hex()


@dataclass(frozen=True)
class SegmentManifest:
    """One committed segment of one object's change events.

    Invariants: ``first_replay_id <= last_replay_id`` (as names sort); ``events`` counts the
    change events the segment holds (GAP events included), ``rows`` the change rows of its chunk
    (``chunk`` is None when every event of the segment was a gap event); ``commit_ts_min`` /
    ``commit_ts_max`` bound the events' ``commitTimestamp``.
    """

    org: str
    object: str
    topic: str
    first_replay_id: str
    last_replay_id: str
    events: int
    rows: int
    commit_ts_min: datetime
    commit_ts_max: datetime
    created_at: datetime
    chunk: ChunkRef | None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    since: datetime | None = None
    """The chain of segments this one continues holds every change committed since then (the
    instant its subscriber's first subscription was in place)."""
    restart: str | None = None
    """The error code that broke the previous chain (SFV-452: replay id expired); such a segment
    holds no events and starts a new chain at ``last_replay_id``."""
    covered_to: datetime | None = None
    """Every change committed up to this instant is in this segment or an earlier one of its chain:
    set when a keep-alive whose ``latest_replay_id`` is the segment's last replay id arrived (the
    subscriber had received everything the bus held when it was sent); None when the segment was
    sealed by size or age, then only ``commit_ts_max`` is proven (:attr:`covered`). A segment
    without events (``events == 0``, no chunk) that is neither a restart is a *heartbeat*: it only
    moves the covered instant forward in idle periods."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "object": self.object,
            "topic": self.topic,
            "first_replay_id": self.first_replay_id,
            "last_replay_id": self.last_replay_id,
            "events": self.events,
            "rows": self.rows,
            "commit_ts_min": self.commit_ts_min.isoformat(),
            "commit_ts_max": self.commit_ts_max.isoformat(),
            "created_at": self.created_at.isoformat(),
            "chunk": self.chunk.to_dict() if self.chunk else None,
            "gaps": self.gaps,
            "since": self.since.isoformat() if self.since else None,
            "restart": self.restart,
            "covered_to": self.covered_to.isoformat() if self.covered_to else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentManifest:
        return cls(
            org=str(d["org"]),
            object=str(d["object"]),
            topic=str(d["topic"]),
            first_replay_id=str(d["first_replay_id"]),
            last_replay_id=str(d["last_replay_id"]),
            events=int(d["events"]),
            rows=int(d["rows"]),
            commit_ts_min=datetime.fromisoformat(d["commit_ts_min"]),
            commit_ts_max=datetime.fromisoformat(d["commit_ts_max"]),
            created_at=datetime.fromisoformat(d["created_at"]),
            chunk=ChunkRef.from_dict(d["chunk"]) if d.get("chunk") else None,
            gaps=list(d.get("gaps") or []),
            since=datetime.fromisoformat(d["since"]) if d.get("since") else None,
            restart=d.get("restart"),
            covered_to=datetime.fromisoformat(d["covered_to"]) if d.get("covered_to") else None,
        )

    @property
    def covered(self) -> datetime:
        """The instant up to which the chain is proven complete at this segment."""
        return max(self.covered_to, self.commit_ts_max) if self.covered_to else self.commit_ts_max

    @property
    def last_replay_bytes(self) -> bytes:
        return bytes.fromhex(self.last_replay_id)

    def referenced_names(self) -> list[str]:
        return [self.chunk.name] if self.chunk else []


def segment_handle(org: str, obj: str, created_at: datetime, last_replay_hex: str) -> Handle:
    """``segments/<org>/<object>/<created, UTC>-<last replay id hex, left-padded to 16>.json.enc``:
    names sort in commit order, even across a reset of the org's replay ids."""
    stem = f"{created_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{last_replay_hex.rjust(16, '0')}"
    parts = (check_segment(org, "org"), check_segment(obj, "object"), check_segment(stem, "segment"))
    return Handle(Kind.SEGMENT, "/".join(parts) + SUFFIX)


def _encode(seg: SegmentManifest, keys: Any) -> tuple[Handle, bytes]:
    h = segment_handle(seg.org, seg.object, seg.created_at, seg.last_replay_id)
    doc = {"format": SEGMENT_FORMAT, "version": SEGMENT_VERSION, **seg.to_dict()}
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    sealed = seal_bytes(
        keys, ContentType.MANIFEST, keys.name_id(h.path), plain, name=h.path, check_content=False
    )
    return h, sealed


def _decode(sealed: bytes, keys: Any, h: Handle) -> SegmentManifest:
    plain = open_bytes(
        keys, sealed, name=h.path, expected_id=keys.name_id(h.path), check_content=False,
        expected_type=ContentType.MANIFEST,
    )  # fmt: skip
    try:
        doc = json.loads(plain)
    except ValueError as err:
        raise ManifestInvalid(name=h.path, what=f"not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != SEGMENT_FORMAT:
        raise ManifestInvalid(name=h.path, what="not an sfvault segment manifest")
    if doc.get("version") != SEGMENT_VERSION:
        raise FormatVersionError(name=h.path, version=doc.get("version"), supported=SEGMENT_VERSION)
    try:
        seg = SegmentManifest.from_dict(doc)
    except (KeyError, ValueError, TypeError) as err:
        raise ManifestInvalid(name=h.path, what=f"{type(err).__name__}: {err}") from None
    if segment_handle(seg.org, seg.object, seg.created_at, seg.last_replay_id) != h:
        raise ManifestInvalid(name=h.path, what="org/object/replay id inside do not match the object name")
    return seg


class SegmentStore:
    """Writes and reads the segments of a repository (an opened ``engine.sink.Repository``)."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def write(self, seg: SegmentManifest, rows: pa.Table | None) -> SegmentManifest:
        """Seal ``rows`` as one chunk, then commit the segment manifest (the commit point).

        ``seg.chunk`` is filled in here. Returns the committed manifest."""
        chunk = None
        if rows is not None and rows.num_rows:
            chunk = self.repo.write_chunk(rows, f"{seg.object}#cdc")
        seg = SegmentManifest(**{**seg.__dict__, "chunk": chunk, "rows": chunk.rows if chunk else 0})
        h, sealed = _encode(seg, self.repo.keys)
        self.repo.backend.put(h, io.BytesIO(sealed), len(sealed))
        return seg

    def names(self, org: str, obj: str | None = None) -> list[Handle]:
        """Segment manifest handles of ``org`` (one object, or all), in name order."""
        prefix = f"{org}/{obj}/" if obj else f"{org}/"
        out = [o.handle for o in self.repo.backend.list(Kind.SEGMENT, prefix)]
        return sorted((h for h in out if h.name.endswith(SUFFIX)), key=lambda h: h.name)

    def load(self, h: Handle) -> SegmentManifest:
        size = self.repo.backend.stat(h).size
        if size > MAX_SEGMENT_MANIFEST_BYTES:
            raise ManifestInvalid(name=h.path, what="too large")
        with self.repo.backend.get(h) as fh:
            sealed = fh.read(size + 1)
        return _decode(sealed, self.repo.keys, h)

    def segments(self, org: str, obj: str) -> list[SegmentManifest]:
        """Every committed segment of ``org``/``obj`` in replay order."""
        return [self.load(h) for h in self.names(org, obj)]

    def checkpoint(self, org: str, obj: str) -> SegmentManifest | None:
        """The newest committed segment of ``org``/``obj``: where a subscriber resumes (None: none)."""
        names = self.names(org, obj)
        for h in reversed(names):
            try:
                return self.load(h)
            except ObjectNotFound:
                continue
        return None

    def referenced_names(self) -> set[str]:
        """Every ``chunks/`` object a committed segment references (``prune`` keeps them)."""
        out: set[str] = set()
        for obj in self.repo.backend.list(Kind.SEGMENT):
            if obj.handle.name.endswith(SUFFIX):
                out.update(self.load(obj.handle).referenced_names())
        return out
