"""A short digest of each row's values: tells apart two versions of one record that share a
``SystemModstamp`` millisecond (the incremental cursor keeps it for its boundary rows).

The digest is BLAKE2b (8 bytes, hex) of a canonical text of the row: every column in order, each
cell as ``<byte length>:<text>`` (null as ``-``), joined by ``|``. The length prefix makes the
encoding injective whatever the values contain. A cell's text is Arrow's cast of the typed value to
string, so it depends only on the typed values, which the Bulk CSV and REST JSON paths produce
identically (``engine.extract.stream``): the same record digests the same on both paths. A
changed field set (a field added, a permission lost) changes every digest; at the cursor's
boundary that only re-captures rows once (decision 0009).
"""

from __future__ import annotations

from hashlib import blake2b

import pyarrow as pa
import pyarrow.compute as pc

DIGEST_BYTES = 8


def _text(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Arrow's cast of ``col`` to string.

    A ``timestamp[tz=UTC]`` column is cast without its zone and given the ``Z`` that Arrow's cast
    appends for UTC: the same text, but Arrow formats a zoned timestamp through a time-zone
    lookup per value, 7-25x slower than a naive one (measured, pyarrow 26), and the digests of a
    full's boundary rows were half of a worker's CPU.
    """
    if pa.types.is_string(col.type):
        return col
    t = col.type
    if pa.types.is_timestamp(t) and t.tz == "UTC":
        naive = pc.cast(pc.cast(col, pa.timestamp(t.unit)), pa.string())
        return pc.binary_join_element_wise(naive, "Z", "")
    return pc.cast(col, pa.string())


def _cells(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    text = _text(col)
    length = pc.cast(pc.binary_length(text), pa.string())
    return pc.fill_null(pc.binary_join_element_wise(length, text, ":"), "-")


def row_digests(batch: pa.RecordBatch | pa.Table) -> list[str]:
    """One hex digest per row of ``batch``, over all of its columns in order."""
    if batch.num_rows == 0:
        return []
    cells = [_cells(c) for c in batch.columns]
    joined = pc.binary_join_element_wise(*cells, "|") if len(cells) > 1 else cells[0]
    return [blake2b(s.encode(), digest_size=DIGEST_BYTES).hexdigest() for s in joined.to_pylist()]
