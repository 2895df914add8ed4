"""Content-addressed sealed objects under ``chunks/``: the store behind chunks and file bodies.

:class:`ContentStore` seals a plaintext stream, names it by its keyed hash and puts it once;
reading streams and authenticates it. File bodies (attachments, documents ...) go through
:meth:`ContentStore.put_blob`, deduplicated by content: the same body is stored once.

Content-addressed objects are sealed deterministically (the salt is derived from the id), so the
same plaintext always gives the same sealed bytes and the same SHA-256, and a repeated ``put`` of
an existing object is a true no-op. Equal ids already reveal equal content; nothing more leaks.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from engine.errors import ObjectTruncated
from engine.model import BlobRef
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.crypto import (
    DEFAULT_SEGMENT_SIZE,
    ContentType,
    DataKeys,
    OpeningReader,
    SealingReader,
)

SPOOL_IN_MEMORY = 8 * 1024 * 1024


class ContentStore:
    """Seal-and-put / get-and-open of content-addressed objects."""

    def __init__(self, backend: Backend, keys: DataKeys, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.backend = backend
        self._keys = keys
        self.segment_size = segment_size

    def put_content(self, src: BinaryIO, plain_size: int, content_type: ContentType) -> tuple[str, int, str]:
        """Seal ``plain_size`` bytes of ``src`` (seekable, read twice: once to name, once to seal).

        Returns ``(name, sealed_bytes, sha256_of_sealed_bytes)``. The sealed stream is verified
        while it is uploaded (see ``SealingReader``); an existing object of the same name and size
        is left alone.
        """
        start = src.tell()
        obj_id, n = self._keys.content_id_stream(src)
        if n != plain_size:
            raise ObjectTruncated(name="plaintext being sealed", size=n, expected=plain_size)
        src.seek(start)
        name = obj_id.hex()
        reader = SealingReader(
            self._keys,
            content_type,
            obj_id,
            src,
            plain_size,
            name=f"chunks/{name[:2]}/{name}",
            check_content=True,
            segment_size=self.segment_size,
            deterministic=True,
        )
        self.backend.put(Handle(Kind.CHUNK, name), cast(BinaryIO, reader), reader.size)
        while reader.read(self.segment_size):  # the object existed: finish sealing for its sha256
            pass
        return name, reader.size, reader.sha256

    @contextmanager
    def open_content(
        self, name: str, sealed_bytes: int, content_type: ContentType | None = None
    ) -> Iterator[OpeningReader]:
        """Stream the authenticated plaintext of ``chunks/<aa>/<name>`` (sealed size ``sealed_bytes``)."""
        h = Handle(Kind.CHUNK, name)
        with self.backend.get(h) as fh:
            yield OpeningReader(
                self._keys,
                fh,
                sealed_bytes,
                name=h.path,
                expected_id=bytes.fromhex(name),
                check_content=True,
                expected_type=content_type,
            )

    # --- file bodies -----------------------------------------------------------------------

    def put_blob(self, body: bytes | Path | BinaryIO) -> BlobRef:
        """Store a file body once; returns its reference. Streams: memory stays bounded for any size.

        ``body`` may be bytes, a path, or a binary stream (a stream that cannot seek is spooled
        to a temporary file first, since it is read twice).
        """
        if isinstance(body, bytes | bytearray | memoryview):
            return self._put_blob_stream(io.BytesIO(body))
        if isinstance(body, Path):
            with body.open("rb") as fh:
                return self._put_blob_stream(fh)
        if getattr(body, "seekable", lambda: False)():
            return self._put_blob_stream(body)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            shutil.copyfileobj(body, spool, DEFAULT_SEGMENT_SIZE)
            spool.seek(0)
            return self._put_blob_stream(spool)  # type: ignore[arg-type]

    def _put_blob_stream(self, src: BinaryIO) -> BlobRef:
        start = src.tell()
        size = src.seek(0, io.SEEK_END) - start
        src.seek(start)
        name, sealed, sha = self.put_content(src, size, ContentType.BLOB)
        return BlobRef(name=name, plain_bytes=size, sealed_bytes=sealed, sha256=sha)

    @contextmanager
    def open_blob(self, ref: BlobRef) -> Iterator[BinaryIO]:
        """Stream a file body; every byte is authenticated before it is returned."""
        with self.open_content(ref.name, ref.sealed_bytes, ContentType.BLOB) as reader:
            yield reader  # type: ignore[misc]
