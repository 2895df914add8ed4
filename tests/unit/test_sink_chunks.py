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
