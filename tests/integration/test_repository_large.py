"""A 200 MiB+ file body goes through seal → put → get → open with bounded memory, on local disk and
Azurite, and the repository works end to end on Azurite."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pytest

from devkit.azurite import Azurite
from engine.model import Manifest, ObjectEntry
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.backends.azure import AzureBackend
from engine.sink.backends.local import LocalBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository
from engine.sink.verify import verify
from engine.sink.wrappers import stack_backend

MiB = 1024 * 1024
SIZE = 200 * MiB + 123


def make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    if kind == "local":
        return stack_backend(LocalBackend(tmp_path / "repo"), wait_max=0)
    az: Azurite = request.getfixturevalue("azurite")
    return stack_backend(
        AzureBackend("large", uuid4().hex, connection_string=az.connection_string), wait_max=0
    )


@pytest.mark.parametrize("kind", ["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def test_a_large_file_body_streams_with_bounded_memory(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    body = tmp_path / "body.bin"
    block = hashlib.sha256(b"large").digest() * (MiB // 32)
    expected = hashlib.sha256()
    with body.open("wb") as fh:
        written = 0
        while written < SIZE:
            piece = block[: SIZE - written]
            fh.write(piece)
            expected.update(piece)
            written += len(piece)
    repo = Repository.init(make(kind, tmp_path, request), LocalKeyFile.create(tmp_path / "k.key"))
    gc.collect()
    tracemalloc.start()
    try:
        ref = repo.put_blob(body)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = hashlib.sha256()
        with repo.open_blob(ref) as fh:
            while piece := fh.read(4 * MiB):
                got.update(piece)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.plain_bytes == SIZE and got.hexdigest() == expected.hexdigest()
    assert put_peak < 64 * MiB, f"sealing and putting peaked at {put_peak / MiB:.0f} MiB"
    assert get_peak < 64 * MiB, f"getting and opening peaked at {get_peak / MiB:.0f} MiB"
    assert repo.put_blob(body) == ref  # stored once


@pytest.mark.azurite
def test_repository_on_azurite(azurite: Azurite, tmp_path: Path) -> None:
    be = stack_backend(
        AzureBackend("repo", uuid4().hex, connection_string=azurite.connection_string), wait_max=0
    )
    kek = LocalKeyFile.create(tmp_path / "k.key")
    repo = Repository.init(be, kek)
    ref = repo.write_chunk(
        pa.table({"Id": ["001000000000000002", "001000000000000001"], "N": [2, 1]}), "Account"
    )
    repo.commit(
        Manifest(
            org="00D000000000001AAA",
            job_id="j1",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            kind="full",
            cycle_id="c1",
            objects={"Account": ObjectEntry(chunks=[ref], rows=2)},
        )
    )
    again = Repository.open(be, kek)
    assert [s.job_id for s in again.snapshots()] == ["j1"]
    assert again.read_chunk(ref)["N"].to_pylist() == [1, 2]
    assert verify(again, read_data=True).problems == []
    assert be.properties().transfer_checksums
    import base64

    from azure.storage.blob import BlobServiceClient

    from tests.helpers.corrupt import read_all

    inner = be.inner.inner  # type: ignore[attr-defined]  # Retrying → Metrics → AzureBackend
    with BlobServiceClient.from_connection_string(azurite.connection_string) as svc:
        props = svc.get_blob_client(
            "repo", f"{inner.prefix}/chunks/{ref.name[:2]}/{ref.name}"
        ).get_blob_properties()
    stored_md5 = bytes(props.content_settings.content_md5)
    assert stored_md5 == hashlib.md5(read_all(be, Handle(Kind.CHUNK, ref.name))).digest(), base64.b64encode(
        stored_md5
    )
