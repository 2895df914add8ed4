"""Which rows an export takes: ``cycle`` (the whole recovery point) or ``changed`` (since the previous job).

``changed`` = the records of the state at job N whose Id was *added* or *changed* compared with the
previous job of the cycle (:func:`engine.diff.compare.compare` semantics, SystemModstamp-only
touches ignored). Records removed since then have no row to export; they are listed in the
archive's ``removed.csv`` index. For the first job of a cycle ``changed`` is the whole state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from engine.diff.compare import ObjectDiff, compare
from engine.diff.recovery import RecoveryPoints, _cast_batch, lit, run

Scope = Literal["changed", "cycle"]


@dataclass
class Selection:
    """The rows of one object that an export writes: a SQL table expression plus their schema."""

    object: str
    job: str
    sql: str
    schema: pa.Schema
    diff: ObjectDiff | None = None
    file: Path | None = None  # the whole recovery point: a Parquet file already sorted by Id

    def batches(self, rp: RecoveryPoints, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow batches in the chunks' schema, sorted by Id (streamed, never all at once).

        A whole recovery point is read straight from its sorted state file (no sort); a ``changed``
        selection is streamed by DuckDB with ``ORDER BY Id``.
        """
        if self.file is not None:
            pf = pq.ParquetFile(self.file)
            try:
                for b in pf.iter_batches(batch_size=batch_rows):
                    yield _cast_batch(b, self.schema)
            finally:
                pf.close()
            return
        reader = rp.con.sql(f"SELECT * FROM {self.sql} ORDER BY Id").to_arrow_reader(batch_rows)
        assert reader is not None
        for b in reader:
            yield _cast_batch(b, self.schema)

    def count(self, rp: RecoveryPoints) -> int:
        return int(run(rp.con, f"SELECT count(*) FROM {self.sql}")[0][0])


def select_rows(rp: RecoveryPoints, obj: str, job: str | None, scope: Scope) -> Selection:
    target = rp.snapshots.job(job).job_id
    schema = rp.schema(obj, target)
    rel = rp.relation(obj, target)
    prev = rp.snapshots.previous(target)
    if scope == "cycle" or prev is None:
        return Selection(obj, target, rel, schema, file=rp.state_file(obj, target))
    diff = compare(rp, target, prev.job_id, objects=[obj]).objects[obj]
    assert diff.ids_file is not None
    sql = (f"(SELECT s.* FROM {rel} s SEMI JOIN (SELECT Id FROM read_parquet({lit(str(diff.ids_file))}) "
           f"WHERE change IN ('added', 'changed')) c ON c.Id = s.Id)")  # fmt: skip
    return Selection(obj, target, sql, schema, diff)
