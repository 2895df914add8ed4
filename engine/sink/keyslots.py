"""Key management: more than one key-encryption key (KEK) per repository, rotation and key backups.

In the manner of restic's ``key list|add|remove|passwd``. The data keys (``enc_key``, ``id_key``)
never change: chunks and manifests are never rewritten. What changes is which KEKs wrap them:

* the *primary* key is the one in ``config`` (``kek`` + ``wrapped_keys``, FORMAT.md section 3);
* every further key is a *key slot*, ``keys/<key id>.json``: plain JSON
  ``{"format": "sfvault-key-slot", "version": 1, "config": {the config document as it would be
  with this KEK as primary}}``; ``<key id>`` is the local key file's fingerprint, or the first 16
  hex of SHA-256 of a Key Vault key id. ``Repository.open`` uses the config when the KEK is the
  primary, else the slot of that KEK.

``rotate`` makes a new KEK primary and drops the old one: (1) put the new KEK's slot, (2) delete
``config``, (3) put the new ``config``, (4) delete the old KEK's slot (if any) and the new KEK's
slot (now redundant). A crash between (2) and (3) leaves no ``config``; :func:`read_config`
then restores it from the single slot whose config names the same repository (the newest
rotation's), so the repository never becomes unreadable. The old KEK no longer opens the
repository after a rotation, unless a copy of the config or of a slot was kept elsewhere
(storage snapshots, soft delete): rotation does not erase copies outside the repository.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ObjectCorrupt, ObjectNotFound
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.crypto import DataKeys
from engine.sink.keys import KekProvider, LocalKeyFile

SLOT_FORMAT = "sfvault-key-slot"
BACKUP_FORMAT = "sfvault-key-backup"
SLOT_VERSION = 1
MAX_SLOT_BYTES = 1024 * 1024


def key_id(reference: dict[str, Any]) -> str:
    """The short id of a KEK, from its (non-secret) reference."""
    if reference.get("provider") == LocalKeyFile.kind:
        return str(reference["fingerprint"])
    return hashlib.sha256(str(reference.get("key_id", "")).encode()).hexdigest()[:16]


def slot_handle(kid: str) -> Handle:
    return Handle(Kind.KEY, f"{kid}.json")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    provider: str
    primary: bool
    created_at: str


def config_doc_for(config_doc: dict[str, Any], kek: KekProvider, keys: DataKeys) -> dict[str, Any]:
    """The config document with ``kek`` as the primary key (same repository, same data keys)."""
    from engine.sink.repository import _keys_aad

    repo_id = config_doc["repo_id"]
    wrapped = kek.wrap(keys.to_bytes(repo_id), _keys_aad(repo_id))
    return {**config_doc, "kek": kek.reference(), "wrapped_keys": base64.b64encode(wrapped).decode()}


def _put(backend: Backend, h: Handle, doc: dict[str, Any]) -> None:
    body = json.dumps(doc, sort_keys=True, indent=2).encode()
    backend.put(h, io.BytesIO(body), len(body))


def read_slot(backend: Backend, h: Handle, size: int | None = None) -> dict[str, Any]:
    """The config document a slot holds (``ObjectCorrupt`` when it is not a key slot)."""
    size = backend.stat(h).size if size is None else size
    if size > MAX_SLOT_BYTES:
        raise ObjectCorrupt(name=h.path)
    with backend.get(h) as fh:
        raw = fh.read(size + 1)
    try:
        doc = json.loads(raw)
        if doc.get("format") != SLOT_FORMAT or doc.get("version") != SLOT_VERSION:
            raise ValueError("not a key slot")
        config = doc["config"]
        if not isinstance(config, dict):
            raise ValueError("no config")
    except (ValueError, KeyError, AttributeError):
        raise ObjectCorrupt(name=h.path) from None
    return config


def slots(backend: Backend) -> dict[str, dict[str, Any]]:
    """Key id → the config document of each key slot (damaged slots are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for obj in backend.list(Kind.KEY):
        if not obj.handle.name.endswith(".json"):
            continue
        try:
            out[obj.handle.name[: -len(".json")]] = read_slot(backend, obj.handle, obj.size)
        except ObjectCorrupt:
            continue
    return out


def list_keys(backend: Backend, config_doc: dict[str, Any]) -> list[KeyInfo]:
    primary = key_id(config_doc["kek"])
    out = [KeyInfo(primary, str(config_doc["kek"]["provider"]), True, str(config_doc.get("created_at", "")))]
    for kid, doc in sorted(slots(backend).items()):
        if kid != primary:
            out.append(KeyInfo(kid, str(doc["kek"]["provider"]), False, str(doc.get("key_added_at", ""))))
    return out


def add_key(backend: Backend, config_doc: dict[str, Any], keys: DataKeys, kek: KekProvider, now: str) -> str:
    """Wrap the data keys under ``kek`` too (a new slot); returns its key id."""
    kid = key_id(kek.reference())
    if kid == key_id(config_doc["kek"]) or kid in slots(backend):
        raise ConfigError(what=f"key {kid} already opens this repository")
    doc = {**config_doc_for(config_doc, kek, keys), "key_added_at": now}
    _put(backend, slot_handle(kid), {"format": SLOT_FORMAT, "version": SLOT_VERSION, "config": doc})
    return kid


def remove_key(backend: Backend, config_doc: dict[str, Any], kid: str, *, in_use: str) -> None:
    """Remove a slot. The primary key cannot be removed (rotate to another key instead), nor the
    key this command opened the repository with (one could lock oneself out)."""
    if kid == key_id(config_doc["kek"]):
        raise ConfigError(what=f"key {kid} is the primary key; `sfvault key rotate` replaces it")
    if kid == in_use:
        raise ConfigError(
            what=f"key {kid} is the key in use; open the repository with another key to remove it"
        )
    try:
        backend.delete(slot_handle(kid))
    except ObjectNotFound:
        raise ConfigError(what=f"no key {kid}; `sfvault key list` shows the keys") from None


def rotate(backend: Backend, config_doc: dict[str, Any], keys: DataKeys, new: KekProvider, now: str) -> str:
    """Make ``new`` the primary key and drop the old primary (see the module docstring)."""
    from engine.sink.repository import CONFIG_HANDLE

    old = key_id(config_doc["kek"])
    kid = key_id(new.reference())
    if kid == old:
        raise ConfigError(what="the new key is the current primary key")
    doc = {**config_doc_for(config_doc, new, keys), "key_added_at": now}
    h = slot_handle(kid)
    try:
        backend.delete(h)  # a slot of this key from an earlier `key add`: replaced by this one
    except ObjectNotFound:
        pass
    _put(backend, h, {"format": SLOT_FORMAT, "version": SLOT_VERSION, "config": doc})
    backend.delete(CONFIG_HANDLE)
    body = json.dumps(doc, sort_keys=True, indent=2).encode()
    backend.put(CONFIG_HANDLE, io.BytesIO(body), len(body))
    for stale in (old, kid):
        try:
            backend.delete(slot_handle(stale))
        except ObjectNotFound:
            pass
    return kid


def restore_config(backend: Backend) -> dict[str, Any] | None:
    """The config document to put back when ``config`` is missing after an interrupted rotation:
    the slot written last (``key_added_at``), when slots exist; else None."""
    found = slots(backend)
    if not found:
        return None
    return max(found.values(), key=lambda d: str(d.get("key_added_at", "")))


def write_key_backup(path: Path, config_doc: dict[str, Any], kek: KekProvider) -> None:
    """A key backup file (mode 0600, refuses to overwrite): the KEK and the repository's config,
    everything needed to open the repository if the key file and the config are lost."""
    if not isinstance(kek, LocalKeyFile):
        raise ConfigError(what="an Azure Key Vault key cannot be exported; back it up in the vault")
    doc = {
        "format": BACKUP_FORMAT,
        "version": SLOT_VERSION,
        "repo_id": config_doc["repo_id"],
        "key_id": kek.fingerprint,
        "key_file": kek.export_doc(),
        "config": config_doc,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(what=f"{path} already exists; refusing to overwrite it") from None
    except OSError as err:
        raise ConfigError(what=f"cannot write {path}: {err.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o600)
