"""The store's cached blob metadata (what the blob endpoint serves from) follows every write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from emulator import ids as idmod
from emulator.churn import churn
from emulator.clock import EmulatorClock
from emulator.generator import generate
from emulator.store import OrgStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[OrgStore]:
    s = OrgStore(None, clock=EmulatorClock(NOW))
    yield s
    s.close()


def test_blob_meta_follows_inserts_updates_and_purges(store: OrgStore) -> None:
    acc = store.insert("Account", {"Name": "A"})
    body = bytes(range(256)) * 10
    aid = store.insert(
        "Attachment", {"Name": "f.bin", "ParentId": acc, "Body": body, "ContentType": "image/png"}
    )
    meta = store.blob_meta("Attachment", aid)
    assert meta is not None and (meta.length, meta.content_type, meta.explicit) == (
        len(body),
        "image/png",
        True,
    )
    assert store.blob_meta("Attachment", idmod.to15(aid)) == meta, "15-character Ids are accepted"

    store.update("Attachment", aid, {"Body": "aGVsbG8="})
    meta = store.blob_meta("Attachment", aid)
    assert meta is not None and meta.length == 5 and store.blob("Attachment", aid) == b"hello"

    other = store.insert("Attachment", {"Name": "g.bin", "ParentId": acc, "Body": b"x"})
    assert store.blob_meta("Attachment", other) is not None, "a new row is seen without a restart"

    store.delete("Attachment", aid)
    assert store.blob_meta("Attachment", aid) is not None, "a row in the recycle bin keeps its body"
    store.purge("Attachment", aid)
    assert store.blob_meta("Attachment", aid) is None
    assert store.blob_meta("Account", acc) is None, "objects without a body field have no blob metadata"


def test_blob_meta_matches_the_tables_after_generation_and_churn(store: OrgStore) -> None:
    generate(store, 3000, seed=5, file_body_bytes=500)
    for _ in range(2):
        for obj in ("Attachment", "ContentVersion", "Document"):
            with store.cursor() as cur:
                length_col = "BodyLength" if obj != "ContentVersion" else "ContentSize"
                rows = cur.execute(f"SELECT Id, {length_col} FROM sf_{obj.lower()}").fetchall()
            assert rows
            for rid, length in rows:
                meta = store.blob_meta(obj, rid)
                assert meta is not None and meta.length == length and not meta.explicit
                assert store.blob_length(obj, rid) == length
        churn(store, 5.0, seed=3)
