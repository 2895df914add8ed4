"""Arrow record batches in, sealed canonical Parquet chunks out (STYLE rules 4 and 14).

A :class:`ChunkWriter` buffers the batches of one Salesforce object and cuts a chunk when the
Parquet it would produce reaches about ``target_bytes`` (``Settings.chunk_target_bytes``, 64 MiB by
default). The size of the Parquet is estimated from the buffered Arrow size and the compression
ratio of the previous chunk (0.3 to start), so chunks land near the target, not exactly on it.
Memory is proportional to one chunk: the buffered batches, their sorted copy and the Parquet bytes;
``max_buffer_bytes`` caps the buffered Arrow bytes whatever the compression ratio.

Canonical form (so that equal data gets equal ids and deduplicates): rows sorted by ``Id`` inside a
chunk (stable), the schema as given by the caller (fixed from describe), and the pinned writer
options in :data:`PARQUET_OPTIONS`. The Parquet bytes also carry the pyarrow version
("created_by"), so chunks written by another pyarrow version get other ids; that costs
deduplication only, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.model import ChunkRef
from engine.sink.blobs import ContentStore
from engine.sink.crypto import ContentType

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "version": "2.6",
    "data_page_version": "1.0",
    "data_page_size": 1024 * 1024,
    "use_dictionary": True,
    "write_statistics": True,
    "store_schema": True,
}
INITIAL_RATIO = 0.3


def canonical_table(table: pa.Table, id_column: str = "Id") -> pa.Table:
    """Rows sorted by ``id_column`` (stable), unless the table has no such column.

    A table already in order is returned as it is: the rows of an Id range usually come in Id
    order, and a sorted copy would double the memory of a chunk at the moment it is written."""
    if id_column in table.column_names and table.num_rows > 1 and not _ascending(table[id_column]):
        return table.sort_by([(id_column, "ascending")])
    return table


def _ascending(column: pa.ChunkedArray) -> bool:
    """No null and no value smaller than the one before it: a stable sort would change nothing."""
    if column.null_count:
        return False
    n = len(column)
    return not pc.any(pc.less(column.slice(1), column.slice(0, n - 1))).as_py()


def parquet_bytes(table: pa.Table, *, row_group_rows: int) -> pa.Buffer:
    """The Parquet encoding of ``table`` with the pinned options, in memory."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, **PARQUET_OPTIONS) as writer:
        writer.write_table(table, row_group_size=row_group_rows)
    return sink.getvalue()


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class ChunkWriter:
    """Writes one object's rows as sealed Parquet chunks of bounded size.

    Use as a context manager, or call :meth:`close`; ``refs`` lists the chunks in write order.
    ``on_chunk`` is called after each chunk is stored (e.g. to refresh the writer's lock).
    """

    def __init__(
        self,
        store: ContentStore,
        object_name: str,
        *,
        target_bytes: int = 64 * 1024 * 1024,
        row_group_rows: int = 128 * 1024,
        id_column: str = "Id",
        modstamp_column: str = "SystemModstamp",
        on_chunk: Callable[[ChunkRef], None] | None = None,
        max_buffer_bytes: int | None = None,
    ) -> None:
        self._store = store
        self.max_buffer_bytes = max_buffer_bytes
        """Cut a chunk when the buffered Arrow data reaches this too, whatever the Parquet estimate
        (data that compresses very well would otherwise buffer ``target_bytes / ratio``)."""
        self.object_name = object_name
        self.target_bytes = target_bytes
        self.row_group_rows = row_group_rows
        self.id_column = id_column
        self.modstamp_column = modstamp_column
        self._on_chunk = on_chunk
        self._batches: list[pa.RecordBatch] = []
        self._arrow_bytes = 0
        self._ratio = INITIAL_RATIO
        self.refs: list[ChunkRef] = []
        self._closed = False

    @property
    def estimated_chunk_bytes(self) -> float:
        return self._arrow_bytes * self._ratio

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Buffer rows; cuts (seals and stores) chunks as the target size is reached."""
        if self._closed:
            raise RuntimeError("ChunkWriter is closed")
        batches: Iterable[pa.RecordBatch] = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        for b in batches:
            self._add(b)

    def _add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        room = self._buffer_limit() - self._arrow_bytes
        if batch.nbytes > room and batch.num_rows > 1:
            per_row = batch.nbytes / batch.num_rows
            take = max(1, int(room / per_row))
            if take < batch.num_rows:
                self._add(batch.slice(0, take))
                self._add(batch.slice(take))
                return
        self._batches.append(batch)
        self._arrow_bytes += batch.nbytes
        if self._arrow_bytes >= self._buffer_limit():
            self.flush()

    def _buffer_limit(self) -> float:
        """The Arrow bytes at which a chunk is cut: its Parquet estimate reaches ``target_bytes``,
        or the buffer reaches ``max_buffer_bytes``."""
        limit = self.target_bytes / self._ratio
        return limit if self.max_buffer_bytes is None else min(limit, self.max_buffer_bytes)

    def flush(self) -> ChunkRef | None:
        """Seal and store the buffered rows as one chunk now (None if nothing is buffered)."""
        if not self._batches:
            return None
        table = pa.Table.from_batches(self._batches)
        arrow_bytes = self._arrow_bytes
        self._batches = []
        self._arrow_bytes = 0
        ref = write_table_chunk(
            self._store,
            table,
            self.object_name,
            row_group_rows=self.row_group_rows,
            id_column=self.id_column,
            modstamp_column=self.modstamp_column,
        )
        if arrow_bytes:
            self._ratio = max(0.01, ref.plain_bytes / arrow_bytes)
        self.refs.append(ref)
        if self._on_chunk is not None:
            self._on_chunk(ref)
        return ref

    def close(self) -> list[ChunkRef]:
        """Store what is buffered and return every chunk written."""
        if not self._closed:
            self.flush()
            self._closed = True
        return self.refs

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._batches = []
            self._closed = True


def write_table_chunk(
    store: ContentStore,
    table: pa.Table,
    object_name: str,
    *,
    row_group_rows: int = 128 * 1024,
    id_column: str = "Id",
    modstamp_column: str = "SystemModstamp",
) -> ChunkRef:
    """Write ``table`` as exactly one chunk (canonical order, pinned options) and return its ref."""
    table = canonical_table(table, id_column)
    buf = parquet_bytes(table, row_group_rows=row_group_rows)
    reader = pa.BufferReader(buf)
    name, sealed, sha = store.put_content(reader, buf.size, ContentType.CHUNK)
    min_id = max_id = max_mod = None
    if id_column in table.column_names and table.num_rows:
        min_id = _as_text(table[id_column][0].as_py())
        max_id = _as_text(table[id_column][table.num_rows - 1].as_py())
    if modstamp_column in table.column_names and table.num_rows:
        max_mod = _as_text(pc.max(table[modstamp_column]).as_py())
    return ChunkRef(
        name=name,
        object=object_name,
        rows=table.num_rows,
        plain_bytes=buf.size,
        sealed_bytes=sealed,
        sha256=sha,
        min_id=min_id,
        max_id=max_id,
        max_modstamp=max_mod,
    )
