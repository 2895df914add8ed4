"""Sealed format: round trips, and one typed error per kind of damage."""

from __future__ import annotations

import io

import pytest

from engine.errors import ChunkIdMismatch, FormatVersionError, ObjectCorrupt, ObjectTruncated
from engine.sink.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    ContentType,
    DataKeys,
    OpeningReader,
    SealingReader,
    open_bytes,
    sealed_size,
)

SEG = 1024


def seal(keys: DataKeys, data: bytes, *, deterministic: bool = True) -> tuple[bytes, bytes, SealingReader]:
    obj_id = keys.content_id(data)
    reader = SealingReader(
        keys,
        ContentType.CHUNK,
        obj_id,
        io.BytesIO(data),
        len(data),
        name="t",
        segment_size=SEG,
        deterministic=deterministic,
    )
    sealed = reader.read()
    return obj_id, sealed, reader


def unseal(keys: DataKeys, sealed: bytes, obj_id: bytes) -> bytes:
    return open_bytes(keys, sealed, name="chunks/t", expected_id=obj_id, check_content=True)


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 17])
def test_round_trip_and_exact_size(size: int) -> None:
    keys = DataKeys.generate()
    data = bytes(i % 253 for i in range(size))
    obj_id, sealed, reader = seal(keys, data)
    assert len(sealed) == sealed_size(size, SEG) == reader.size
    assert unseal(keys, sealed, obj_id) == data
    import hashlib

    assert reader.sha256 == hashlib.sha256(sealed).hexdigest()


def test_content_addressed_sealing_is_deterministic_and_named_sealing_is_not() -> None:
    keys = DataKeys.generate()
    data = b"x" * 5000
    assert seal(keys, data)[1] == seal(keys, data)[1]
    assert seal(keys, data, deterministic=False)[1] != seal(keys, data, deterministic=False)[1]


def test_ids_are_keyed() -> None:
    a, b = DataKeys.generate(), DataKeys.generate()
    assert a.content_id(b"same") != b.content_id(b"same")
    assert a.content_id(b"same") == a.content_id(b"same")


def test_the_wrong_data_key_fails_authentication() -> None:
    keys = DataKeys.generate()
    obj_id, sealed, _ = seal(keys, b"secret rows" * 300)
    other = DataKeys(enc_key=DataKeys.generate().enc_key, id_key=keys.id_key)
    with pytest.raises(ObjectCorrupt):
        unseal(other, sealed, obj_id)


@pytest.mark.parametrize(
    ("offset", "error"),
    [
        (0, ObjectCorrupt),  # magic
        (4, FormatVersionError),  # format version
        (20, ObjectCorrupt),  # salt
        (50, ChunkIdMismatch),  # id in the header
        (HEADER_SIZE + 5, ObjectCorrupt),  # first segment
        (HEADER_SIZE + SEG + TAG_SIZE + 3, ObjectCorrupt),  # second segment
        (-1, ObjectCorrupt),  # last tag
    ],
)
def test_a_flipped_bit_anywhere_is_a_typed_error(offset: int, error: type[Exception]) -> None:
    keys = DataKeys.generate()
    data = bytes(range(256)) * 10
    obj_id, sealed, _ = seal(keys, data)
    damaged = bytearray(sealed)
    damaged[offset] ^= 0x02
    with pytest.raises(error) as err:
        unseal(keys, bytes(damaged), obj_id)
    assert "chunks/t" in str(err.value)


def test_truncation_is_detected_at_a_segment_boundary_and_inside_a_segment() -> None:
    keys = DataKeys.generate()
    data = b"y" * (3 * SEG)
    obj_id, sealed, _ = seal(keys, data)
    at_boundary = sealed[: HEADER_SIZE + 2 * (SEG + TAG_SIZE)]
    with pytest.raises(ObjectTruncated):
        unseal(keys, at_boundary, obj_id)
    with pytest.raises(ObjectCorrupt):  # cut inside the last segment, size unknown: it fails authentication
        unseal(keys, sealed[:-5], obj_id)
    with pytest.raises(ObjectTruncated):
        unseal(keys, sealed[:30], obj_id)
    # the size the reference promised is longer than what the storage returns
    reader = OpeningReader(
        keys, io.BytesIO(sealed[:-5]), len(sealed), name="x", expected_id=obj_id, check_content=True
    )
    with pytest.raises(ObjectTruncated):
        reader.read()


def test_appended_bytes_are_refused() -> None:
    keys = DataKeys.generate()
    obj_id, sealed, _ = seal(keys, b"z" * 100)
    with pytest.raises((ObjectCorrupt, ObjectTruncated)):
        unseal(keys, sealed + b"\x00" * (SEG + TAG_SIZE), obj_id)


def test_a_swapped_object_fails_its_id_check() -> None:
    keys = DataKeys.generate()
    _, sealed_a, _ = seal(keys, b"object a" * 100)
    id_b, _, _ = seal(keys, b"object b" * 100)
    with pytest.raises(ChunkIdMismatch):
        unseal(keys, sealed_a, id_b)


def test_sealing_refuses_content_that_does_not_hash_to_the_id() -> None:
    keys = DataKeys.generate()
    reader = SealingReader(
        keys, ContentType.CHUNK, keys.content_id(b"other"), io.BytesIO(b"data"), 4, name="n", segment_size=SEG
    )
    with pytest.raises(ChunkIdMismatch):
        reader.read()


def test_a_sealing_stream_can_start_over_for_retries() -> None:
    keys = DataKeys.generate()
    data = b"r" * (2 * SEG + 5)
    obj_id = keys.content_id(data)
    reader = SealingReader(
        keys,
        ContentType.BLOB,
        obj_id,
        io.BytesIO(data),
        len(data),
        name="n",
        segment_size=SEG,
        deterministic=True,
    )
    first = reader.read(700)
    reader.seek(0)
    whole = reader.read()
    assert whole.startswith(first) and unseal(keys, whole, obj_id) == data


def test_data_keys_are_bound_to_their_repository_and_hidden_in_reprs() -> None:
    keys = DataKeys.generate()
    blob = keys.to_bytes("ab" * 16)
    assert DataKeys.from_bytes(blob, "ab" * 16) == keys
    from engine.errors import WrongKey

    with pytest.raises(WrongKey):
        DataKeys.from_bytes(blob, "cd" * 16)
    assert keys.enc_key.get_secret_value().hex() not in repr(keys)
