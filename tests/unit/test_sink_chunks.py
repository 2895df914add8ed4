"""Canonical chunk order: ``canonical_table`` equals a stable sort by Id, sorted input or not."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sink.chunks import canonical_table

IDS = st.lists(st.one_of(st.none(), st.sampled_from(["001A", "001B", "001C", "003A", "a01"])), max_size=30)


@settings(max_examples=300, deadline=None)
@given(IDS, st.booleans(), st.integers(1, 4))
def test_canonical_table_is_a_stable_sort_by_id(ids: list[str | None], presort: bool, pieces: int) -> None:
    if presort:  # the common case (rows of an Id range in Id order) takes the no-copy path
        ids = sorted(ids, key=lambda i: (i is None, i or ""))
    seq = list(range(len(ids)))  # tells a stable sort from an unstable one among equal Ids
    size = max(1, len(ids) // pieces)
    batches = [
        pa.record_batch({"Id": pa.array(ids[k : k + size], pa.string()), "n": pa.array(seq[k : k + size])})
        for k in range(0, len(ids), size)
    ]
    table = pa.Table.from_batches(batches, schema=pa.schema([("Id", pa.string()), ("n", pa.int64())]))
    expected = table.sort_by([("Id", "ascending")])
    assert canonical_table(table).equals(expected)


def test_buffered_arrow_is_capped_whatever_the_compression() -> None:
    """Rows that compress ~100x would buffer ``target / ratio`` (gigabytes for a 16 MiB target) before
    a chunk is cut; ``max_buffer_bytes`` cuts at that many Arrow bytes (decision 0015)."""
    from engine.sink.backends.memory import MemoryBackend
    from engine.sink.blobs import ContentStore
    from engine.sink.chunks import ChunkWriter
    from engine.sink.crypto import DataKeys

    store = ContentStore(MemoryBackend(), DataKeys.generate())
    cap = 256 * 1024
    writer = ChunkWriter(store, "Account", target_bytes=16 * 1024 * 1024, max_buffer_bytes=cap)
    peak = 0
    with writer:
        for k in range(40):
            ids = [f"001{k:05d}{i:07d}" for i in range(1000)]
            batch = pa.record_batch({"Id": ids, "Name": ["same text in every row"] * 1000})
            writer.write_batch(batch)
            peak = max(peak, writer._arrow_bytes)
    assert len(writer.refs) >= 4
    assert peak < cap
    assert sum(r.rows for r in writer.refs) == 40_000
