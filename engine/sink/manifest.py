"""Snapshot manifests: versioned JSON, sealed, at ``snapshots/<org>/<job_id>.json.enc``.

Writing a manifest is the only commit point of a job (STYLE rule 6). The plaintext is UTF-8 JSON
with sorted keys::

    {"format": "sfvault-manifest", "version": 2, "org": ..., "job_id": ..., "created_at": ...,
     "kind": "full" | "incremental", "cycle_id": ..., "objects": {...}, "job": {...}}

(``engine.model.Manifest.to_dict``; ``docs/FORMAT.md`` section 6). Version 1 kept the job's
facts in an untyped ``extra`` object; :func:`manifest_v1_to_v2` moves them into the typed
places (``objects.<O>.mode/cursor/swept/warning/files_unavailable``, ``job``).

It is sealed with content type 3 and the id HMAC(id_key, "sfvault-name\\0" || object path), so
a manifest copied or renamed to another job's name fails (``ChunkIdMismatch``). Older versions
are upgraded one step at a time through :data:`MIGRATIONS`; newer ones are refused
(``FormatVersionError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from engine.errors import FormatVersionError, InvalidObjectName, ManifestInvalid
from engine.model import Manifest, SnapshotInfo
from engine.sink.backend import Handle, Kind
from engine.sink.crypto import ContentType, DataKeys, open_bytes, seal_bytes

MANIFEST_FORMAT = "sfvault-manifest"
MANIFEST_VERSION = 2
SUFFIX = ".json.enc"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _v1_cursor(extra_cursor: Any, entry_cursor: Any) -> Any:
    """The object's exact cursor of a version-1 manifest (``extra.cursors``), else its summary
    (``objects.<O>.cursor``: field, last, the Ids at exactly ``last``) in the new shape."""
    if isinstance(extra_cursor, dict):
        return extra_cursor
    if not isinstance(entry_cursor, dict) or entry_cursor.get("last") is None:
        return None
    last = entry_cursor["last"]
    seen = [[i, last] for i in entry_cursor.get("ids_at_last", [])]
    return {"field": entry_cursor["field"], "last": last, "seen": seen, "truncated": False}


def _v1_error(err: Any) -> dict[str, str]:
    code = err.get("code") or err.get("error_code") or "SFV-000"
    return {"code": str(code), "message": str(err.get("message") or err.get("error_message") or code)}


def manifest_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (job facts in ``extra``, written until the typed job record) → version 2.

    Per object: ``mode`` from ``extra.modes`` (absent: null, the job's kind; version 1 listed
    every object that did not fail there, so "captured" stays "no errors"), the exact cursor from
    ``extra.cursors``, ``swept`` from ``extra.sweeps``, ``warning`` and ``files_unavailable``
    from their maps. The job: ``cycle`` from ``extra.cycle`` and ``usage``; version 1 did not
    record the trigger, times, requested objects or org, so those stay null.
    """
    extra = doc.pop("extra", None) or {}
    modes = extra.get("modes") or {}
    cursors = extra.get("cursors") or {}
    sweeps = set(extra.get("sweeps") or ())
    warnings = extra.get("warnings") or {}
    unavailable = extra.get("files_unavailable") or {}
    objects: dict[str, Any] = {}
    for name, entry in (doc.get("objects") or {}).items():
        errors = [_v1_error(e) for e in entry.get("errors") or ()]
        entry = {**entry, "errors": errors}
        entry["mode"] = modes.get(name)
        entry["cursor"] = _v1_cursor(cursors.get(name), entry.get("cursor"))
        entry["swept"] = name in sweeps
        warning = warnings.get(name)
        entry["warning"] = _v1_error(warning) if isinstance(warning, dict) and warning.get("code") else None
        entry["files_unavailable"] = int(unavailable.get(name) or 0)
        objects[name] = entry
    doc["objects"] = objects
    doc["job"] = {"cycle": extra.get("cycle"), "usage": extra.get("usage") or {}}
    return doc


#: version n → function upgrading a version-n document to version n+1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: manifest_v1_to_v2}


def check_segment(value: str, what: str) -> str:
    if not _SAFE.match(value) or value.endswith(SUFFIX):
        raise InvalidObjectName(name=value, what=f"{what} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}")
    return value


def manifest_handle(org: str, job_id: str) -> Handle:
    return Handle(Kind.SNAPSHOT, f"{check_segment(org, 'org')}/{check_segment(job_id, 'job id')}{SUFFIX}")


def snapshot_info(name: str, size: int) -> SnapshotInfo | None:
    """The snapshot named by a ``snapshots/`` handle name, or None for other objects."""
    org, sep, rest = name.partition("/")
    if not sep or "/" in rest or not rest.endswith(SUFFIX):
        return None
    return SnapshotInfo(org=org, job_id=rest[: -len(SUFFIX)], name=name, sealed_bytes=size)


def encode(manifest: Manifest, keys: DataKeys) -> bytes:
    """The sealed bytes of a manifest."""
    h = manifest_handle(manifest.org, manifest.job_id)
    doc = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **manifest.to_dict()}
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return seal_bytes(
        keys, ContentType.MANIFEST, keys.name_id(h.path), plain, name=h.path, check_content=False
    )


def upgrade(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """Apply :data:`MIGRATIONS` until the document is at :data:`MANIFEST_VERSION`."""
    version = doc.get("version")
    if not isinstance(version, int):
        raise ManifestInvalid(name=name, what="no integer format version")
    if version > MANIFEST_VERSION or version < 1:
        raise FormatVersionError(name=name, version=version, supported=MANIFEST_VERSION)
    while version < MANIFEST_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["version"] = version
    return doc


def decode(sealed: bytes, keys: DataKeys, h: Handle) -> Manifest:
    """Open, parse, upgrade and validate the manifest stored at ``h``."""
    plain = open_bytes(
        keys,
        sealed,
        name=h.path,
        expected_id=keys.name_id(h.path),
        check_content=False,
        expected_type=ContentType.MANIFEST,
    )
    try:
        doc = json.loads(plain)
    except ValueError as err:
        raise ManifestInvalid(name=h.path, what=f"not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ManifestInvalid(name=h.path, what="not an sfvault manifest")
    doc = upgrade(doc, h.path)
    try:
        manifest = Manifest.from_dict(doc)
    except (KeyError, ValueError, TypeError) as err:
        raise ManifestInvalid(name=h.path, what=f"{type(err).__name__}: {err}") from None
    if manifest_handle(manifest.org, manifest.job_id) != h:
        raise ManifestInvalid(name=h.path, what="org/job id inside do not match the object name")
    return manifest
