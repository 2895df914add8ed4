"""The keyless integrity index: what a check without the key needs to find damage (STYLE rule 3).

One small plain-JSON record per committed snapshot, written right after its manifest (the
manifest stays the only commit point), at ``index/<org>/<job_id>.idx.json``::

    {"format": "sfvault-index", "version": 1, "org": ..., "job_id": ..., "created_at": ...,
     "manifest": [sealed_bytes, sha256],
     "objects": {"<chunk or blob name>": [sealed_bytes, sha256], ...},
     "snapshots": {"<job_id>": sealed_bytes, ...},
     "sha256": "<hex SHA-256 of the record without sha256 and mac>",
     "mac": "<hex HMAC-SHA256(index key, the record without sha256 and mac)>"}

``objects`` are the objects the snapshot references, ``snapshots`` every other snapshot of the
org that the writer saw at commit (with its manifest's size), so that deleting an older
manifest, with or without its own record, leaves a trace in every newer record. A snapshot that
leaves on purpose (``prune``, or set aside by ``repair``) gets a tombstone first,
``index/<org>/<job_id>.gone.json`` (``{"format": "sfvault-index-gone", ..., "reason",
"redo"}``), and its own record is deleted after its manifest.

Everything here is readable without the key; the ``mac`` needs the key to check (the index
key is ``HMAC(id_key, "sfvault-index\\0")``). So a keyless check finds accidental damage (bit
rot, truncation, lost or swapped objects); an attacker with write access but no key can rewrite
a record to hide their change from the keyless check, never from the keyed one (``verify``
checks every mac, and every read is authenticated anyway). docs/FORMAT.md section 9.1.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import ObjectCorrupt, ObjectNotFound
from engine.model import Manifest
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.crypto import DataKeys

INDEX_FORMAT = "sfvault-index"
GONE_FORMAT = "sfvault-index-gone"
INDEX_VERSION = 1
RECORD_SUFFIX = ".idx.json"
GONE_SUFFIX = ".gone.json"
MAX_RECORD_BYTES = 256 * 1024 * 1024
_MAC_LABEL = b"sfvault-index\x00"
_OBJECT_TAG_LABEL = "sfvault-object\x00"


def record_handle(org: str, job_id: str) -> Handle:
    return Handle(Kind.INDEX, f"{org}/{job_id}{RECORD_SUFFIX}")


def gone_handle(org: str, job_id: str) -> Handle:
    return Handle(Kind.INDEX, f"{org}/{job_id}{GONE_SUFFIX}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k not in ("mac", "sha256")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(keys: DataKeys, doc: dict[str, Any]) -> str:
    index_key = keys.content_id(_MAC_LABEL)
    return hmac.new(index_key, _canonical(doc), hashlib.sha256).hexdigest()


def _seal(keys: DataKeys, doc: dict[str, Any]) -> None:
    """Add the keyless checksum (accidental damage) and the mac (needs the key: forgery)."""
    doc["sha256"] = sha256_hex(_canonical(doc))
    doc["mac"] = _mac(keys, doc)


def object_tag(keys: DataKeys, org: str, obj: str) -> str:
    """A keyed tag of a Salesforce object name: the index never shows object names in clear."""
    return keys.name_id(_OBJECT_TAG_LABEL + f"{org}/{obj.lower()}").hex()[:32]


@dataclass(frozen=True)
class IndexRecord:
    org: str
    job_id: str
    created_at: str
    manifest: tuple[int, str]
    objects: dict[str, tuple[int, str]]
    snapshots: dict[str, int]
    mac: str
    doc: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def authentic(self, keys: DataKeys) -> bool:
        return hmac.compare_digest(self.mac, _mac(keys, self.doc))


@dataclass(frozen=True)
class Tombstone:
    org: str
    job_id: str
    reason: str
    at: str
    redo: tuple[str, ...]
    """Object tags (:func:`object_tag`) to extract in full at the org's next job; ``*`` = all."""
    mac: str
    doc: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def authentic(self, keys: DataKeys) -> bool:
        return hmac.compare_digest(self.mac, _mac(keys, self.doc))


def _put_json(backend: Backend, h: Handle, doc: dict[str, Any]) -> None:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    try:
        backend.stat(h)
    except ObjectNotFound:
        backend.put(h, io.BytesIO(body), len(body))
        return
    # write-once: an existing record of another size is replaced (delete + put) only by
    # repair's rebuild, never in the commit path (the commit writes a new job's record)
    backend.delete(h)
    backend.put(h, io.BytesIO(body), len(body))


def build_record(keys: DataKeys, manifest: Manifest, sealed: bytes, others: dict[str, int]) -> dict[str, Any]:
    """The index record of a manifest whose sealed bytes are ``sealed``."""
    objects: dict[str, list[Any]] = {}
    for entry in manifest.objects.values():
        for ref in [*entry.chunks, *entry.deleted_ids_chunks]:
            objects[ref.name] = [ref.sealed_bytes, ref.sha256]
        for blob in entry.blobs:
            objects[blob.name] = [blob.sealed_bytes, blob.sha256]
    doc: dict[str, Any] = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "org": manifest.org,
        "job_id": manifest.job_id,
        "created_at": manifest.created_at.isoformat(),
        "manifest": [len(sealed), sha256_hex(sealed)],
        "objects": objects,
        "snapshots": {j: int(v) for j, v in sorted(others.items()) if j != manifest.job_id},
    }
    _seal(keys, doc)
    return doc


def write_record(backend: Backend, doc: dict[str, Any]) -> None:
    _put_json(backend, record_handle(doc["org"], doc["job_id"]), doc)


def write_tombstone(
    backend: Backend, keys: DataKeys, org: str, job_id: str, *, reason: str, at: datetime, redo: Iterable[str]
) -> None:
    doc: dict[str, Any] = {
        "format": GONE_FORMAT,
        "version": INDEX_VERSION,
        "org": org,
        "job_id": job_id,
        "reason": reason,
        "at": at.isoformat(),
        "redo": sorted(set(redo)),
    }
    _seal(keys, doc)
    _put_json(backend, gone_handle(org, job_id), doc)


def _read_json(backend: Backend, h: Handle, size: int) -> dict[str, Any]:
    if size > MAX_RECORD_BYTES:
        raise ObjectCorrupt(name=h.path)
    with backend.get(h) as fh:
        raw = fh.read(size + 1)
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ObjectCorrupt(name=h.path) from None
    if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
        raise ObjectCorrupt(name=h.path)
    if doc.get("sha256") != sha256_hex(_canonical(doc)):
        raise ObjectCorrupt(name=h.path)  # damaged: its own checksum does not match
    return doc


def _pair(value: Any) -> tuple[int, str]:
    size, digest = value
    return int(size), str(digest)


def parse_record(doc: dict[str, Any], h: Handle) -> IndexRecord:
    try:
        if doc["format"] != INDEX_FORMAT:
            raise ValueError("format")
        return IndexRecord(
            org=str(doc["org"]),
            job_id=str(doc["job_id"]),
            created_at=str(doc["created_at"]),
            manifest=_pair(doc["manifest"]),
            objects={str(k): _pair(v) for k, v in doc["objects"].items()},
            snapshots={str(k): int(v) for k, v in doc["snapshots"].items()},
            mac=str(doc["mac"]),
            doc=doc,
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        raise ObjectCorrupt(name=h.path) from None


def parse_tombstone(doc: dict[str, Any], h: Handle) -> Tombstone:
    try:
        if doc["format"] != GONE_FORMAT:
            raise ValueError("format")
        return Tombstone(
            org=str(doc["org"]),
            job_id=str(doc["job_id"]),
            reason=str(doc["reason"]),
            at=str(doc["at"]),
            redo=tuple(str(t) for t in doc["redo"]),
            mac=str(doc["mac"]),
            doc=doc,
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        raise ObjectCorrupt(name=h.path) from None


@dataclass
class IndexContents:
    """Everything under ``index/`` (of one org or all), parsed; damaged records in ``damaged``."""

    records: dict[tuple[str, str], IndexRecord] = field(default_factory=dict)
    gone: dict[tuple[str, str], Tombstone] = field(default_factory=dict)
    damaged: list[tuple[Handle, ObjectCorrupt]] = field(default_factory=list)


def split_name(name: str) -> tuple[str, str, str] | None:
    """``(org, job_id, "record" | "gone")`` of an ``index/`` handle name, or None."""
    org, sep, rest = name.partition("/")
    if not sep or "/" in rest:
        return None
    if rest.endswith(RECORD_SUFFIX):
        return org, rest[: -len(RECORD_SUFFIX)], "record"
    if rest.endswith(GONE_SUFFIX):
        return org, rest[: -len(GONE_SUFFIX)], "gone"
    return None


def read_index(backend: Backend, org: str | None = None, *, tombstones_only: bool = False) -> IndexContents:
    """Everything under ``index/`` (of ``org``, or all); ``tombstones_only`` reads just the
    tombstones (what a job start and compare need: records can be large)."""
    out = IndexContents()
    for obj in backend.list(Kind.INDEX, f"{org}/" if org else ""):
        parts = split_name(obj.handle.name)
        if parts is None:
            continue
        o, job, what = parts
        if tombstones_only and what != "gone":
            continue
        try:
            doc = _read_json(backend, obj.handle, obj.size)
            if what == "record":
                rec = parse_record(doc, obj.handle)
                if (rec.org, rec.job_id) != (o, job):
                    raise ObjectCorrupt(name=obj.handle.path)
                out.records[(o, job)] = rec
            else:
                tomb = parse_tombstone(doc, obj.handle)
                if (tomb.org, tomb.job_id) != (o, job):
                    raise ObjectCorrupt(name=obj.handle.path)
                out.gone[(o, job)] = tomb
        except ObjectCorrupt as err:
            out.damaged.append((obj.handle, err))
    return out


def manifest_digests(backend: Backend, org: str) -> Iterator[tuple[str, int, str]]:
    """``(job_id, size, sha256)`` of every manifest of ``org`` (reads each manifest once)."""
    from engine.sink.manifest import snapshot_info

    for obj in backend.list(Kind.SNAPSHOT, f"{org}/"):
        info = snapshot_info(obj.handle.name, obj.size)
        if info is None:
            continue
        with backend.get(obj.handle) as fh:
            data = fh.read(obj.size + 1)
        yield info.job_id, len(data), sha256_hex(data)
