"""The repository: config, chunks, blobs, snapshot manifests and locks over one Backend.

Layout (``docs/FORMAT.md`` is the spec)::

    config                           plain JSON: repo id, format version, KEK reference, wrapped data keys
    chunks/<aa>/<id>                 sealed Parquet chunks and file bodies, id = HMAC(id_key, plaintext)
    snapshots/<org>/<job>.json.enc   sealed manifests (the commit point of a job)
    locks/<scope>/<token>.<seq>.json one writer per org; ``_exclusive`` for prune

Write order: chunks and blobs, then the manifest (:meth:`Repository.commit` checks that every
referenced object exists with its recorded size first). Read order: list manifests, then read the
chunks they name. A crash before the manifest leaves unreferenced objects for ``prune``; it never
leaves a snapshot pointing at something missing.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, BinaryIO
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import (
    FormatVersionError,
    MissingObject,
    ObjectCorrupt,
    ObjectNotFound,
    ObjectTruncated,
    PermanentError,
    RepositoryExists,
    RepositoryNotInitialized,
    SfvaultError,
    WrongKey,
)
from engine.model import BlobRef, ChunkRef, Manifest, SnapshotInfo
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.backends import open_backend
from engine.sink.blobs import ContentStore
from engine.sink.chunks import ChunkWriter, write_table_chunk
from engine.sink.crypto import DEFAULT_SEGMENT_SIZE, ContentType, DataKeys
from engine.sink.keys import KekProvider
from engine.sink.lock import DEFAULT_STALE_AFTER, RepoLock
from engine.sink.manifest import MAX_MANIFEST_BYTES, decode, encode, manifest_handle, snapshot_info

log = structlog.get_logger(__name__)

CONFIG_FORMAT = "sfvault-repository"
CONFIG_VERSION = 1
CONFIG_HANDLE = Handle(Kind.CONFIG, "config")
MAX_CONFIG_BYTES = 1024 * 1024
# commit checks every referenced object: by concurrent stats up to this many (an incremental
# references a few hundred, and listing a repository of 10^5 chunks costs far more), by one
# listing above it (a full job of a big org references thousands)
LIST_INSTEAD_OF_STAT = 4096
STAT_THREADS = 16

__all__ = ["Repository", "RepositoryConfig", "open_backend", "open_repository", "read_config"]


class RepositoryConfig:
    """The parsed ``config`` object."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.repo_id: str = doc["repo_id"]
        self.version: int = doc["version"]
        self.kek: dict[str, Any] = doc["kek"]
        self.wrapped_keys = base64.b64decode(doc["wrapped_keys"])
        self.segment_size: int = int(doc.get("segment_size", DEFAULT_SEGMENT_SIZE))
        self.created_at: str = doc.get("created_at", "")

    def to_bytes(self) -> bytes:
        return json.dumps(self.doc, sort_keys=True, indent=2).encode()


def _keys_aad(repo_id: str) -> bytes:
    return b"sfvault-data-keys\x00" + bytes.fromhex(repo_id)


def read_config(backend: Backend) -> RepositoryConfig:
    """Read and validate ``config`` (no key needed)."""
    try:
        size = backend.stat(CONFIG_HANDLE).size
    except ObjectNotFound:
        size = _restore_config(backend)
    if size > MAX_CONFIG_BYTES:
        raise ObjectCorrupt(name="config")
    with backend.get(CONFIG_HANDLE) as fh:
        raw = fh.read(MAX_CONFIG_BYTES)
    try:
        doc = json.loads(raw)
        if doc.get("format") != CONFIG_FORMAT:
            raise ValueError("not an sfvault repository config")
    except (ValueError, AttributeError):
        raise ObjectCorrupt(name="config") from None
    if doc.get("version") != CONFIG_VERSION:
        raise FormatVersionError(name="config", version=doc.get("version"), supported=CONFIG_VERSION)
    try:
        return RepositoryConfig(doc)
    except (KeyError, ValueError, TypeError):
        raise ObjectCorrupt(name="config") from None


def _restore_config(backend: Backend) -> int:
    """Put ``config`` back from the key slot a rotation interrupted between deleting the old config
    and putting the new one (``engine.sink.keyslots``); ``RepositoryNotInitialized`` if none."""
    from engine.sink.keyslots import restore_config

    doc = restore_config(backend)
    if doc is None:
        raise RepositoryNotInitialized(url=backend.properties().location)
    body = json.dumps(doc, sort_keys=True, indent=2).encode()
    backend.put(CONFIG_HANDLE, io.BytesIO(body), len(body))
    log.warning("config restored from a key slot (an interrupted key rotation)")
    return len(body)


def _unwrap_from_slot(backend: Backend, config: RepositoryConfig, kek: KekProvider) -> bytes:
    """The data keys wrapped by ``kek`` in its key slot (``keys/<key id>.json``); ``WrongKey``
    when ``kek`` has none. The slot must name this repository."""
    from engine.sink.keyslots import key_id, read_slot, slot_handle

    try:
        doc = read_slot(backend, slot_handle(key_id(kek.reference())))
    except ObjectNotFound:
        raise WrongKey(repo=config.repo_id) from None
    slot = RepositoryConfig(doc)
    if slot.repo_id != config.repo_id:
        raise WrongKey(repo=config.repo_id)
    return kek.unwrap(slot.wrapped_keys, _keys_aad(slot.repo_id), slot.kek, repo=slot.repo_id)


class Repository:
    """An opened (unlocked) repository. Build one with :meth:`init` or :meth:`open`.

    Thread-safe for concurrent chunk and blob writes; commits of one org must hold that org's
    lock (:meth:`lock`).
    """

    def __init__(
        self,
        backend: Backend,
        config: RepositoryConfig,
        keys: DataKeys,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self._keys = keys
        self.settings = settings or Settings()
        self.clock = clock or SystemClock()
        self.store = ContentStore(backend, keys, segment_size=config.segment_size)

    def __repr__(self) -> str:
        return f"Repository(id={self.repo_id}, location={self.location!r})"

    @property
    def repo_id(self) -> str:
        return self.config.repo_id

    @property
    def location(self) -> str:
        return self.backend.properties().location

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        backend: Backend,
        kek: KekProvider,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> Repository:
        """Create a repository: fresh data keys wrapped by ``kek``; ``RepositoryExists`` if one is there."""
        clock = clock or SystemClock()
        try:
            backend.stat(CONFIG_HANDLE)
        except ObjectNotFound:
            pass
        else:
            raise RepositoryExists(url=backend.properties().location)
        repo_id = uuid4().hex
        keys = DataKeys.generate()
        doc = {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "repo_id": repo_id,
            "created_at": clock.now().isoformat(),
            "kek": kek.reference(),
            "wrapped_keys": base64.b64encode(kek.wrap(keys.to_bytes(repo_id), _keys_aad(repo_id))).decode(),
            "segment_size": segment_size,
        }
        config = RepositoryConfig(doc)
        body = config.to_bytes()
        from engine.errors import ObjectExists

        try:
            backend.put(CONFIG_HANDLE, io.BytesIO(body), len(body))
        except ObjectExists:
            raise RepositoryExists(url=backend.properties().location) from None
        return cls.open(backend, kek, settings=settings, clock=clock)

    @classmethod
    def open(
        cls,
        backend: Backend,
        kek: KekProvider,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> Repository:
        """Open a repository: ``RepositoryNotInitialized``, ``WrongKey`` or ``ObjectCorrupt`` (config)."""
        config = read_config(backend)
        try:
            blob = kek.unwrap(config.wrapped_keys, _keys_aad(config.repo_id), config.kek, repo=config.repo_id)
        except WrongKey:
            blob = _unwrap_from_slot(backend, config, kek)
        keys = DataKeys.from_bytes(blob, config.repo_id)
        return cls(backend, config, keys, settings=settings, clock=clock)

    @staticmethod
    def open_backend_from_url(url: str, settings: Settings) -> Backend:
        """The production backend stack for ``url`` (see :func:`engine.sink.backends.open_backend`)."""
        return open_backend(url, settings)

    def close(self) -> None:
        self.backend.close()

    # --- writing ---------------------------------------------------------------------------

    def chunk_writer(
        self,
        object_name: str,
        *,
        lock: RepoLock | None = None,
        target_bytes: int | None = None,
        max_buffer_bytes: int | None = None,
    ) -> ChunkWriter:
        """A writer that cuts ``object_name``'s rows into sealed chunks (refreshes ``lock`` as it goes)."""
        return ChunkWriter(
            self.store,
            object_name,
            target_bytes=target_bytes or self.settings.chunk_target_bytes,
            max_buffer_bytes=max_buffer_bytes,
            row_group_rows=self.settings.row_group_rows,
            on_chunk=(lambda _ref: lock.refresh_if_due()) if lock is not None else None,
        )

    def write_chunk(self, data: pa.Table | pa.RecordBatch, object_name: str) -> ChunkRef:
        """Store ``data`` as exactly one chunk (callers that stream use :meth:`chunk_writer`)."""
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        return write_table_chunk(self.store, table, object_name, row_group_rows=self.settings.row_group_rows)

    def put_blob(self, body: bytes | BinaryIO | Any) -> BlobRef:
        """Store a file body (bytes, path or stream) once, deduplicated by content."""
        return self.store.put_blob(body)

    def lock(
        self,
        org: str,
        holder: str,
        *,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        lane: str | None = None,
        job: str | None = None,
    ) -> RepoLock:
        """The writer lock of ``org`` (not yet acquired: use ``with repo.lock(org, holder):``): the
        whole org, or one ``lane`` of it (``incremental`` or ``full``, decision 0016), held for
        ``job`` when known."""
        return RepoLock(
            self.backend, org, holder, clock=self.clock, stale_after=stale_after, lane=lane, job=job
        )

    def commit(self, manifest: Manifest, *, lock: RepoLock | None = None) -> SnapshotInfo:
        """Write the manifest: the commit point of a job.

        Checks first that every referenced chunk and blob exists with its recorded size
        (``MissingObject`` / ``ObjectTruncated``), and that ``lock`` (if given) is still held.
        A job id is committed once (``ObjectExists`` on a second commit with other content).
        """
        h = manifest_handle(manifest.org, manifest.job_id)
        expected: dict[str, int] = {}
        for entry in manifest.objects.values():
            for ref in [*entry.chunks, *entry.deleted_ids_chunks]:
                expected[ref.name] = ref.sealed_bytes
            for blob in entry.blobs:
                expected[blob.name] = blob.sealed_bytes
        if len(expected) > LIST_INSTEAD_OF_STAT:  # one listing is cheaper than thousands of stats
            listed = {o.handle.name: o.size for o in self.backend.list(Kind.CHUNK)}
            sizes = {name: listed.get(name) for name in expected}
        else:
            with ThreadPoolExecutor(max_workers=STAT_THREADS, thread_name_prefix="sfvault-stat") as pool:
                sizes = dict(zip(expected, pool.map(self._size_or_none, expected), strict=True))
        for name, size in sorted(expected.items()):
            ch = Handle(Kind.CHUNK, name)
            actual = sizes[name]
            if actual is None:
                raise MissingObject(name=ch.path, by=h.path)
            if actual != size:
                raise ObjectTruncated(name=ch.path, size=actual, expected=size)
        if lock is not None:
            lock.check()
        sealed = encode(manifest, self._keys)
        self.backend.put(h, io.BytesIO(sealed), len(sealed))
        self._index_commit(manifest, sealed)
        return SnapshotInfo(org=manifest.org, job_id=manifest.job_id, name=h.name, sealed_bytes=len(sealed))

    def _index_commit(self, manifest: Manifest, sealed: bytes) -> None:
        """Write the snapshot's keyless index record (after the manifest: the manifest stays the
        commit point) and the records of older snapshots that have none (repositories made before
        the index). A failure here does not undo the commit: ``verify`` warns about a snapshot
        missing from the index, and the next commit or ``repair`` writes its record."""
        from engine.sink import index

        try:
            listed = {info.job_id: info.sealed_bytes for info in self.snapshots(manifest.org)}
            index.write_record(self.backend, index.build_record(self._keys, manifest, sealed, listed))
            self.backfill_index(manifest.org, listed)
        except SfvaultError as err:
            log.warning("index record not written", org=manifest.org, job=manifest.job_id, code=err.code)

    def backfill_index(self, org: str, listed: dict[str, int] | None = None) -> list[str]:
        """Write the index record of every readable snapshot of ``org`` that has none (and no
        tombstone); returns their job ids. Unreadable manifests are left for ``repair``."""
        from engine.sink import index

        if listed is None:
            listed = {info.job_id: info.sealed_bytes for info in self.snapshots(org)}
        have = set()
        for obj in self.backend.list(Kind.INDEX, f"{org}/"):
            parts = index.split_name(obj.handle.name)
            if parts is not None:
                have.add(parts[1])
        written = []
        for job_id in sorted(set(listed) - have):
            try:
                sealed = self.read_manifest_bytes(org, job_id)
                manifest = decode(sealed, self._keys, manifest_handle(org, job_id))
            except PermanentError:
                continue
            index.write_record(self.backend, index.build_record(self._keys, manifest, sealed, listed))
            written.append(job_id)
        return written

    def gone_snapshots(self, org: str) -> dict[str, tuple[str, str]]:
        """Job id → (reason, when) of the snapshots of ``org`` that left on purpose (index
        tombstones: ``pruned``, ``quarantined``, ``rewritten``, ``lost``)."""
        from engine.sink.index import read_index

        return {
            job: (t.reason, t.at)
            for (_org, job), t in read_index(self.backend, org, tombstones_only=True).gone.items()
        }

    @property
    def keys(self) -> DataKeys:
        """The data keys (for the index's macs and object tags; never logged or pickled)."""
        return self._keys

    def _size_or_none(self, name: str) -> int | None:
        try:
            return self.backend.stat(Handle(Kind.CHUNK, name)).size
        except ObjectNotFound:
            return None

    # --- reading ---------------------------------------------------------------------------

    def snapshots(self, org: str | None = None) -> list[SnapshotInfo]:
        """Committed snapshots (all orgs, or one), sorted by org then job id. No decryption."""
        prefix = f"{org}/" if org else ""
        out = []
        for obj in self.backend.list(Kind.SNAPSHOT, prefix):
            info = snapshot_info(obj.handle.name, obj.size)
            if info is not None:
                out.append(info)
        return sorted(out, key=lambda s: (s.org, s.job_id))

    def read_manifest_bytes(self, org: str, job_id: str) -> bytes:
        """The sealed bytes of one snapshot manifest (not yet authenticated)."""
        h = manifest_handle(org, job_id)
        size = self.backend.stat(h).size
        if size > MAX_MANIFEST_BYTES:
            raise ObjectCorrupt(name=h.path)
        with self.backend.get(h) as fh:
            sealed = fh.read(size + 1)
        if len(sealed) != size:
            raise ObjectTruncated(name=h.path, size=len(sealed), expected=size)
        return sealed

    def load_manifest(self, org: str, job_id: str) -> Manifest:
        """Read, authenticate and parse one snapshot manifest."""
        return decode(self.read_manifest_bytes(org, job_id), self._keys, manifest_handle(org, job_id))

    def manifests(self, org: str | None = None, *, newest_first: bool = False) -> Iterator[Manifest]:
        """Every committed manifest, one at a time (read lazily: stop early to read fewer).

        ``newest_first``: in reverse job id order (job ids sort by creation time)."""
        infos = self.snapshots(org)
        for info in reversed(infos) if newest_first else infos:
            yield self.load_manifest(info.org, info.job_id)

    @contextmanager
    def open_chunk(self, ref: ChunkRef) -> Iterator[BinaryIO]:
        """Stream the authenticated Parquet bytes of a chunk."""
        with self.store.open_content(ref.name, ref.sealed_bytes, ContentType.CHUNK) as reader:
            yield reader  # type: ignore[misc]

    def read_chunk_bytes(self, ref: ChunkRef) -> bytes:
        """The whole Parquet plaintext of a chunk (about ``chunk_target_bytes`` of memory)."""
        out = io.BytesIO()
        try:
            with self.store.open_content(ref.name, ref.sealed_bytes, ContentType.CHUNK) as reader:
                reader.read_all_into(out)
        except ObjectNotFound:
            raise MissingObject(
                name=Handle(Kind.CHUNK, ref.name).path, by=f"a chunk reference of {ref.object}"
            ) from None
        return out.getvalue()

    def read_chunk(self, ref: ChunkRef) -> pa.Table:
        """A chunk as an Arrow table; raises a typed integrity error rather than return bad rows."""
        return pq.read_table(pa.BufferReader(self.read_chunk_bytes(ref)))

    @contextmanager
    def open_blob(self, ref: BlobRef) -> Iterator[BinaryIO]:
        """Stream a file body (authenticated segment by segment)."""
        with self.store.open_blob(ref) as fh:
            yield fh

    def check_object(self, name: str, sealed_bytes: int) -> int:
        """Read, authenticate and re-hash one ``chunks/`` object; returns its plaintext size."""
        with self.store.open_content(name, sealed_bytes) as reader:
            n = 0
            while piece := reader.read(self.config.segment_size):
                n += len(piece)
            return n


def open_repository(settings: Settings, *, clock: Clock | None = None) -> Repository:
    """Open the repository ``settings`` point at, with the key provider its config names
    (the local key file ``settings.key_file``, or the Azure Key Vault key recorded at init)."""
    from engine.sink.keys import kek_for_reference

    backend = open_backend(settings.repository_url, settings)
    kek = kek_for_reference(read_config(backend).kek, key_file=settings.key_file)
    return Repository.open(backend, kek, settings=settings, clock=clock)
