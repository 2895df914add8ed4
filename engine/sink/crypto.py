"""Sealing: AES-256-GCM in authenticated segments, keyed object ids (STYLE rules 4 and 5).

Byte layout (``docs/FORMAT.md`` is the spec)::

    header (76 bytes, all of it is associated data of every segment)
      0   4  magic  b"SFVS"
      4   1  format version (1)
      5   1  content type (1 Parquet chunk, 2 file blob, 3 manifest)
      6   2  reserved, zero
      8   4  segment size S in bytes, big-endian (plaintext bytes per segment)
      12  32 salt (random per object)
      44  32 object id
    segments: ciphertext of S plaintext bytes (the last: 0..S bytes) followed by a 16-byte GCM tag

* The key of an object is HKDF-SHA256(enc_key, salt, info=b"sfvault seal v1"), so nonces never
  repeat across objects; segment ``i`` uses the 12-byte nonce ``i`` (11 bytes, big-endian) ||
  ``final`` (1 byte, 1 on the last segment only), so dropping, reordering or truncating
  segments fails authentication (the STREAM construction).
* The object id is HMAC-SHA256(id_key, plaintext) for content-addressed objects (chunks, blobs)
  and HMAC-SHA256(id_key, b"sfvault-name\\0" + name) for named ones (manifests). It sits in the
  header, so a swapped or renamed object is refused before decrypting (``ChunkIdMismatch``), and
  it is authenticated as associated data.
* Sealing streams: memory is a few segments, whatever the object size. While sealing, every
  segment is opened again and the plaintext re-hashed; the last segment is only handed out once
  the re-hash equals the id, so a put of a badly sealed object never completes.
* Opening never returns unauthenticated bytes: each segment is verified before it is returned.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretBytes

from engine.errors import (
    ChunkIdMismatch,
    FormatVersionError,
    KeyFileInvalid,
    ObjectCorrupt,
    ObjectTruncated,
    WrongKey,
)
from engine.sink.backend import read_exactly

MAGIC = b"SFVS"
SEAL_VERSION = 1
SUPPORTED_SEAL_VERSIONS = (1,)
HEADER = struct.Struct(">4sBBHI32s32s")
HEADER_SIZE = HEADER.size  # 76
TAG_SIZE = 16
SALT_SIZE = 32
ID_SIZE = 32
DEFAULT_SEGMENT_SIZE = 4 * 1024 * 1024
MIN_SEGMENT_SIZE = 1024
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
HKDF_INFO = b"sfvault seal v1"
NAME_ID_PREFIX = b"sfvault-name\x00"
SALT_ID_PREFIX = b"sfvault-salt\x00"
DATA_KEYS_MAGIC = b"SFVK"
DATA_KEYS_VERSION = 1


class ContentType(IntEnum):
    CHUNK = 1
    BLOB = 2
    MANIFEST = 3


# --- keys and ids --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataKeys:
    """The per-repository data keys: ``enc_key`` seals, ``id_key`` names. Never stored in clear.

    Reprs never show key bytes (``SecretBytes``).
    """

    enc_key: SecretBytes
    id_key: SecretBytes

    @classmethod
    def generate(cls) -> DataKeys:
        return cls(SecretBytes(os.urandom(32)), SecretBytes(os.urandom(32)))

    def to_bytes(self, repo_id: str) -> bytes:
        """The blob a KEK wraps: magic, version, repository id (binds keys to one repository), keys."""
        rid = bytes.fromhex(repo_id)
        return (
            DATA_KEYS_MAGIC
            + bytes([DATA_KEYS_VERSION, len(rid)])
            + rid
            + self.enc_key.get_secret_value()
            + self.id_key.get_secret_value()
        )

    @classmethod
    def from_bytes(cls, blob: bytes, repo_id: str) -> DataKeys:
        rid = bytes.fromhex(repo_id)
        if blob[:4] != DATA_KEYS_MAGIC or len(blob) < 6:
            raise KeyFileInvalid(path="config", what="wrapped data keys have an unknown layout")
        if blob[4] != DATA_KEYS_VERSION:
            raise FormatVersionError(name="config data keys", version=blob[4], supported=DATA_KEYS_VERSION)
        n = blob[5]
        if blob[6 : 6 + n] != rid:
            raise WrongKey(repo=repo_id)
        rest = blob[6 + n :]
        if len(rest) != 64:
            raise KeyFileInvalid(path="config", what="wrapped data keys have the wrong length")
        return cls(SecretBytes(rest[:32]), SecretBytes(rest[32:]))

    def hasher(self) -> hmac.HMAC:
        """A streaming HMAC-SHA256 under ``id_key`` (for content ids)."""
        return hmac.new(self.id_key.get_secret_value(), digestmod=hashlib.sha256)

    def content_id(self, data: bytes | memoryview) -> bytes:
        h = self.hasher()
        h.update(data)
        return h.digest()

    def content_id_stream(self, src: BinaryIO, block: int = DEFAULT_SEGMENT_SIZE) -> tuple[bytes, int]:
        """HMAC of everything ``src`` holds from its position, and how many bytes that was."""
        h = self.hasher()
        n = 0
        while piece := src.read(block):
            h.update(piece)
            n += len(piece)
        return h.digest(), n

    def name_id(self, name: str) -> bytes:
        """The id of a named (not content-addressed) object such as a manifest."""
        return self.content_id(NAME_ID_PREFIX + name.encode())

    def derived_salt(self, obj_id: bytes) -> bytes:
        """The salt of a deterministically sealed (content-addressed) object."""
        return self.content_id(SALT_ID_PREFIX + obj_id)

    def object_aead(self, salt: bytes) -> AESGCM:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=HKDF_INFO).derive(
            self.enc_key.get_secret_value()
        )
        return AESGCM(key)


def sealed_size(plain_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Exact size of the sealed object for ``plain_size`` bytes of plaintext."""
    segments = max(1, -(-plain_size // segment_size))
    return HEADER_SIZE + plain_size + TAG_SIZE * segments


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


# --- sealing -------------------------------------------------------------------------------


class SealingReader:
    """A readable stream of the sealed form of ``src`` (``plain_size`` bytes from its position).

    Hand it to ``Backend.put``. It verifies while it goes (each segment is decrypted again and the
    plaintext re-hashed; with ``check_content`` the re-hash must equal ``obj_id`` before the last
    bytes are released). After EOF, ``sha256`` is the hex SHA-256 of the sealed bytes. ``seek(0)``
    starts over (for retries) when ``src`` is seekable.
    """

    def __init__(
        self,
        keys: DataKeys,
        content_type: ContentType,
        obj_id: bytes,
        src: BinaryIO,
        plain_size: int,
        *,
        name: str,
        check_content: bool = True,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        deterministic: bool = False,
    ) -> None:
        self._keys = keys
        self._deterministic = deterministic
        self._type = content_type
        self._id = obj_id
        self._src = src
        self._src_start = src.tell() if _seekable(src) else 0
        self.plain_size = plain_size
        self.name = name
        self._check_content = check_content
        self._seg = segment_size
        self.size = sealed_size(plain_size, segment_size)
        self._segments = max(1, -(-plain_size // segment_size))
        self._reset()

    def _reset(self) -> None:
        salt = self._keys.derived_salt(self._id) if self._deterministic else os.urandom(SALT_SIZE)
        self._header = HEADER.pack(MAGIC, SEAL_VERSION, int(self._type), 0, self._seg, salt, self._id)
        self._aead = self._keys.object_aead(salt)
        self._index = 0
        self._buf = memoryview(self._header)
        self._pos = 0
        self._rehash = self._keys.hasher()
        self._sha = hashlib.sha256(self._header)
        self._done = False
        self._emitted = 0

    @property
    def sha256(self) -> str:
        if not self._done or self._buf:
            raise RuntimeError("sha256 is known only after the sealed stream was read to the end")
        return self._sha.hexdigest()

    def _next_segment(self) -> None:
        final = self._index == self._segments - 1
        want = self.plain_size - self._index * self._seg if final else self._seg
        plain = read_exactly(self._src, want)
        if len(plain) != want:
            raise ObjectTruncated(name=f"source of {self.name}", size=len(plain), expected=want)
        nonce = _nonce(self._index, final)
        sealed = self._aead.encrypt(nonce, plain, self._header)
        del plain
        try:  # STYLE rule 5: open what we sealed before it leaves
            self._rehash.update(self._aead.decrypt(nonce, sealed, self._header))
        except InvalidTag as err:
            raise ObjectCorrupt(name=self.name) from err
        if final:
            if self._src.read(1):
                raise ObjectTruncated(
                    name=f"source of {self.name}", size=self.plain_size + 1, expected=self.plain_size
                )
            if self._check_content and not hmac.compare_digest(self._rehash.digest(), self._id):
                raise ChunkIdMismatch(name=self.name)
            self._done = True
        self._sha.update(sealed)
        self._index += 1
        self._buf = memoryview(sealed)

    def read(self, n: int = -1) -> bytes:
        out: list[bytes] = []
        want = self.size if n is None or n < 0 else n
        while want > 0:
            if not self._buf:
                if self._done:
                    break
                self._next_segment()
            piece = self._buf[:want]
            self._buf = self._buf[len(piece) :]
            out.append(bytes(piece))
            want -= len(piece)
        data = out[0] if len(out) == 1 else b"".join(out)
        self._emitted += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return _seekable(self._src)

    def tell(self) -> int:
        return self._emitted

    def seek(self, pos: int, whence: int = 0) -> int:
        if pos != 0 or whence != 0:
            raise io.UnsupportedOperation("a sealing stream can only start over (seek(0))")
        self._src.seek(self._src_start)
        self._reset()
        return 0

    def close(self) -> None:
        """The source belongs to the caller."""


def _seekable(f: BinaryIO) -> bool:
    return bool(getattr(f, "seekable", lambda: False)())


def seal_bytes(
    keys: DataKeys,
    content_type: ContentType,
    obj_id: bytes,
    data: bytes,
    *,
    name: str,
    check_content: bool = True,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> bytes:
    """Seal a small plaintext in memory (manifests)."""
    reader = SealingReader(
        keys,
        content_type,
        obj_id,
        io.BytesIO(data),
        len(data),
        name=name,
        check_content=check_content,
        segment_size=segment_size,
    )
    return reader.read()


# --- opening -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedHeader:
    version: int
    content_type: int
    segment_size: int
    salt: bytes
    obj_id: bytes


def parse_header(raw: bytes, *, name: str, total_size: int) -> SealedHeader:
    """Check magic, version and layout of a sealed object's header (no key needed)."""
    if len(raw) < HEADER_SIZE:
        raise ObjectTruncated(name=name, size=total_size, expected=f">= {HEADER_SIZE + TAG_SIZE}")
    magic, version, ctype, reserved, seg, salt, obj_id = HEADER.unpack(raw[:HEADER_SIZE])
    if magic != MAGIC:
        raise ObjectCorrupt(name=name)
    if version not in SUPPORTED_SEAL_VERSIONS:
        raise FormatVersionError(name=name, version=version, supported=SEAL_VERSION)
    if reserved != 0 or not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE or ctype not in (1, 2, 3):
        raise ObjectCorrupt(name=name)
    return SealedHeader(version, ctype, seg, salt, obj_id)


def plain_size_of(header: SealedHeader, total_size: int, name: str) -> int:
    """Plaintext size implied by the sealed size; ``ObjectTruncated`` if the size is impossible."""
    body = total_size - HEADER_SIZE
    per = header.segment_size + TAG_SIZE
    segments = max(1, -(-body // per))
    last = body - (segments - 1) * per
    if body < TAG_SIZE or last < TAG_SIZE:
        raise ObjectTruncated(name=name, size=total_size, expected="a whole number of sealed segments")
    return body - TAG_SIZE * segments


class OpeningReader:
    """A readable stream of the plaintext of a sealed object; every byte it returns is authenticated.

    Args:
        keys: the repository's data keys.
        src: the sealed stream, positioned at the header.
        total_size: the size of the sealed object (from ``stat`` or the reference).
        name: object name for error messages.
        expected_id: the id the object must carry (its name); ``ChunkIdMismatch`` otherwise.
        check_content: re-hash the plaintext and compare it with the id at the end (content-addressed
            objects); the comparison happens before the last segment is returned.
        expected_type: refuse another content type (``ObjectCorrupt``).

    Errors: ``ObjectTruncated`` (stream shorter than ``total_size`` or cut at a segment boundary),
    ``ObjectCorrupt`` (authentication failed: altered bytes or the wrong data key),
    ``ChunkIdMismatch``, ``FormatVersionError``.
    """

    def __init__(
        self,
        keys: DataKeys,
        src: BinaryIO,
        total_size: int,
        *,
        name: str,
        expected_id: bytes,
        check_content: bool,
        expected_type: ContentType | None = None,
    ) -> None:
        self._src = src
        self._name = name
        self._total = total_size
        raw = read_exactly(src, HEADER_SIZE)
        header = parse_header(raw, name=name, total_size=total_size if len(raw) == HEADER_SIZE else len(raw))
        if expected_type is not None and header.content_type != int(expected_type):
            raise ObjectCorrupt(name=name)
        if not hmac.compare_digest(header.obj_id, expected_id):
            raise ChunkIdMismatch(name=name)
        self.header = header
        self.plain_size = plain_size_of(header, total_size, name)
        self._raw_header = raw
        self._aead = keys.object_aead(header.salt)
        self._segments = max(1, -(-self.plain_size // header.segment_size))
        self._index = 0
        self._buf = memoryview(b"")
        self._hasher = keys.hasher() if check_content else None
        self._expected_id = expected_id
        self._read_sealed = HEADER_SIZE

    def _next_segment(self) -> None:
        final = self._index == self._segments - 1
        seg = self.header.segment_size
        want = (self.plain_size - self._index * seg if final else seg) + TAG_SIZE
        sealed = read_exactly(self._src, want)
        self._read_sealed += len(sealed)
        if len(sealed) != want:
            raise ObjectTruncated(name=self._name, size=self._read_sealed, expected=self._total)
        try:
            plain = self._aead.decrypt(_nonce(self._index, final), sealed, self._raw_header)
        except InvalidTag:
            raise self._classify_failure(sealed, final) from None
        if final:
            if self._src.read(1):
                raise ObjectCorrupt(name=self._name)
            if self._hasher is not None:
                self._hasher.update(plain)
                if not hmac.compare_digest(self._hasher.digest(), self._expected_id):
                    raise ChunkIdMismatch(name=self._name)
        elif self._hasher is not None:
            self._hasher.update(plain)
        self._index += 1
        self._buf = memoryview(plain)

    def _classify_failure(self, sealed: bytes, final: bool) -> Exception:
        if final:
            try:  # a segment that opens as non-final where the last one should be: cut off behind it
                self._aead.decrypt(_nonce(self._index, False), sealed, self._raw_header)
            except InvalidTag:
                return ObjectCorrupt(name=self._name)
            return ObjectTruncated(name=self._name, size=self._total, expected="more segments")
        return ObjectCorrupt(name=self._name)

    def read(self, n: int = -1) -> bytes:
        out: list[bytes] = []
        want = self.plain_size if n is None or n < 0 else n
        while want > 0:
            if not self._buf:
                if self._index >= self._segments:
                    break
                self._next_segment()
                if not self._buf:
                    break
            piece = self._buf[:want]
            self._buf = self._buf[len(piece) :]
            out.append(bytes(piece))
            want -= len(piece)
        if self._index == 0 and self._segments == 1 and not out:
            self._next_segment()  # empty plaintext: still authenticate the single segment
        return out[0] if len(out) == 1 else b"".join(out)

    def read_all_into(self, dst: BinaryIO) -> int:
        """Copy the whole plaintext to ``dst`` segment by segment; returns the byte count."""
        n = 0
        while self._index < self._segments:
            self._next_segment()
            dst.write(self._buf)
            n += len(self._buf)
            self._buf = memoryview(b"")
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The sealed stream belongs to the caller."""


def open_bytes(
    keys: DataKeys,
    sealed: bytes,
    *,
    name: str,
    expected_id: bytes,
    check_content: bool,
    expected_type: ContentType | None = None,
) -> bytes:
    """Open a small sealed object held in memory (manifests)."""
    reader = OpeningReader(
        keys,
        io.BytesIO(sealed),
        len(sealed),
        name=name,
        expected_id=expected_id,
        check_content=check_content,
        expected_type=expected_type,
    )
    out = io.BytesIO()
    reader.read_all_into(out)
    return out.getvalue()
