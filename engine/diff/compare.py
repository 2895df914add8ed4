"""Compare two recovery points of one cycle, and the per-job statistics of the Data view.

``compare(N, M)`` per object, over the two states that :mod:`engine.diff.recovery` materialises:

* **added**: Ids live at N and not at M; **removed**: live at M and not at N (deleted or
  hard-deleted in between; archived activities stay live, see decision 0007); **changed**: live at
  both with at least one compared field different.
* For changed records, the changed fields with old (at M) and new (at N) values, as text.

Decisions (documented in ``docs/MYSQL_TYPES.md`` § Compare):

* ``SystemModstamp`` is **ignored** by default: Salesforce bumps it for system-only writes
  (recalculations, related-record changes) that no user made, and the emulator's change log does
  not count those ``touch`` events either. It is still part of the row versions. Pass
  ``ignore_fields=()`` to see those records as changed.
* Only fields present in both states are compared; fields that exist on one side only (a field
  added to or removed from the org between the jobs) are listed in ``columns_added`` /
  ``columns_removed`` and do not make every record "changed".
* An object captured at N but not at M counts all its records as added (and the reverse as removed).

Everything runs in DuckDB over the Parquet state files; Id lists and field changes are written
to Parquet files in the scratch folder and streamed, never held in Python lists unless asked for
with a cap.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.diff.recovery import (
    BLOB_SUFFIX,
    RecoveryPoints,
    Snapshots,
    base_index,
    captured,
    lit,
    object_as_of,
    q,
    run,
)
from engine.errors import JobNotInCycle, NoPreviousJob, ObjectNotInBackup
from engine.model import ApiCalls, api_calls_of

DEFAULT_IGNORED = ("SystemModstamp",)
FILE_OBJECTS = frozenset({"Attachment", "Document", "StaticResource", "ContentVersion", "MailMergeTemplate"})
OBJECT_TYPES = ("standard", "custom", "feed", "share", "files")


def object_type(name: str) -> str:
    """standard, custom, feed, share or files (the Data view's filter)."""
    if name in FILE_OBJECTS:
        return "files"
    if name.endswith("Feed"):
        return "feed"
    if name.endswith("Share") or name.endswith("__Share"):
        return "share"
    if name.endswith("__c") or name.endswith("__mdt") or name.endswith("__x") or name.endswith("__e"):
        return "custom"
    return "standard"


@dataclass
class ObjectDiff:
    """What changed in one object between two jobs; Ids and fields live in the Parquet files."""

    object: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    records_new: int = 0
    records_old: int = 0
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    ids_file: Path | None = None  # Id, change ('added' | 'removed' | 'changed'), sorted by Id
    fields_file: Path | None = None  # Id, field, old, new (text), sorted by Id, field

    def iter_ids(self, change: str) -> Iterator[str]:
        """Ids of one kind of change, in Id order, streamed from the Parquet file."""
        if self.ids_file is None:
            return
        pf = pq.ParquetFile(self.ids_file)
        for b in pf.iter_batches(batch_size=65_536):
            ch = b.column("change").to_pylist()
            yield from (i for i, c in zip(b.column("Id").to_pylist(), ch, strict=True) if c == change)

    def ids(self, change: str, *, limit: int | None = None) -> list[str]:
        """Ids of one kind of change, in Id order (cap them with ``limit`` for big diffs)."""
        if self.ids_file is None:
            return []
        out: list[str] = []
        pf = pq.ParquetFile(self.ids_file)
        for b in pf.iter_batches(batch_size=65_536):
            ch = b.column("change").to_pylist()
            out.extend(i for i, c in zip(b.column("Id").to_pylist(), ch, strict=True) if c == change)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def field_changes(self) -> Iterator[tuple[str, str, str | None, str | None]]:
        """``(Id, field, old, new)`` of the changed records, streamed."""
        if self.fields_file is None:
            return
        pf = pq.ParquetFile(self.fields_file)
        for b in pf.iter_batches(batch_size=65_536):
            yield from zip(*(b.column(c).to_pylist() for c in ("Id", "field", "old", "new")), strict=True)

    def field_counts(self) -> dict[str, int]:
        """Field → number of changed records in which it changed (the compare summary)."""
        if self.fields_file is None:
            return {}
        counts: dict[str, int] = {}
        pf = pq.ParquetFile(self.fields_file)
        for b in pf.iter_batches(batch_size=65_536, columns=["field"]):
            for vc in b.column("field").value_counts().to_pylist():
                counts[vc["values"]] = counts.get(vc["values"], 0) + vc["counts"]
        return dict(sorted(counts.items()))

    def changed_fields(self) -> dict[str, set[str]]:
        """Id → names of its changed fields (small diffs and tests)."""
        out: dict[str, set[str]] = {}
        for rid, f, _, _ in self.field_changes():
            out.setdefault(rid, set()).add(f)
        return out


@dataclass
class Comparison:
    org: str
    job: str
    against: str
    objects: dict[str, ObjectDiff]

    def write_details(self, folder: Path | str) -> list[Path]:
        """Per object ``<obj>.ids.{parquet,csv}`` and ``<obj>.fields.{parquet,csv}``; returns the files."""
        out_dir = Path(folder)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for name, d in sorted(self.objects.items()):
            for kind, src in (("ids", d.ids_file), ("fields", d.fields_file)):
                if src is None:
                    continue
                pq_path = out_dir / f"{name}.{kind}.parquet"
                csv_path = out_dir / f"{name}.{kind}.csv"
                pf = pq.ParquetFile(src)
                with pq.ParquetWriter(pq_path, pf.schema_arrow, compression="zstd") as w, \
                        csv_path.open("w", newline="", encoding="utf-8") as fh:  # fmt: skip
                    cw = csv.writer(fh, lineterminator="\r\n")
                    cw.writerow(pf.schema_arrow.names)
                    for b in pf.iter_batches(batch_size=65_536):
                        w.write_batch(b)
                        cols = [b.column(i).to_pylist() for i in range(b.num_columns)]
                        cw.writerows(zip(*cols, strict=True))
                written += [pq_path, csv_path]
        return written


def _comparable(t: pa.DataType) -> bool:
    return not pa.types.is_nested(t)


def as_text(expr: str, kind: pa.DataType) -> str:
    """SQL for a value as text, timestamps in ISO 8601 (``2026-11-25T10:00:00.000Z``, UTC): DuckDB's
    own cast would give ``2026-11-25 10:00:00+00``, which the API must not answer (issue 15)."""
    if pa.types.is_timestamp(kind):
        utc = f"timezone('UTC', {expr})" if kind.tz is not None else expr
        suffix = "Z" if kind.tz is not None else ""
        return f"strftime({utc}, '%Y-%m-%dT%H:%M:%S.%g{suffix}')"
    return f"CAST({expr} AS VARCHAR)"


def _diff_object(rp: RecoveryPoints, obj: str, new: str | None, old: str | None,
                 ignore: Sequence[str]) -> ObjectDiff:  # fmt: skip
    d = ObjectDiff(obj)
    con = rp.con
    if new is None and old is None:
        return d
    tag = f"{obj}-{new or 'none'}-{old or 'none'}".replace("/", "_")
    d.ids_file = rp.scratch.file(f"cmp-{tag}.ids.parquet")
    d.fields_file = rp.scratch.file(f"cmp-{tag}.fields.parquet")
    if new is None or old is None:
        side = new if new is not None else old
        change = "added" if new is not None else "removed"
        run(
            con,
            f"COPY (SELECT Id, {lit(change)} AS change FROM {rp.relation(obj, side)} ORDER BY Id) "
            f"TO {lit(str(d.ids_file))} (FORMAT parquet)",
        )
        empty = pa.schema(
            [("Id", pa.string()), ("field", pa.string()), ("old", pa.string()), ("new", pa.string())]
        )
        pq.write_table(empty.empty_table(), d.fields_file)
        n = rp.count(obj, side)
        d.records_new, d.records_old = (n, 0) if new is not None else (0, n)
        d.added, d.removed = (n, 0) if new is not None else (0, n)
        return d
    sn, so = rp.schema(obj, new), rp.schema(obj, old)
    d.columns_added = [c for c in sn.names if c not in so.names]
    d.columns_removed = [c for c in so.names if c not in sn.names]
    skip = {*ignore, "Id"}
    cols = [c for c in sn.names if c in so.names and c not in skip and _comparable(sn.field(c).type)]
    cmp: list[str] = []
    for c in cols:
        if sn.field(c).type == so.field(c).type:
            cmp.append(f"n.{q(c)} IS DISTINCT FROM o.{q(c)}")
        else:
            cmp.append(f"CAST(n.{q(c)} AS VARCHAR) IS DISTINCT FROM CAST(o.{q(c)} AS VARCHAR)")
    any_diff = " OR ".join(cmp) if cmp else "false"
    cand = rp.candidates(obj, new, old)
    rn, ro = rp.relation(obj, new, ids=cand), rp.relation(obj, old, ids=cand)
    run(con, f"""
        COPY (
            SELECT coalesce(n.Id, o.Id) AS Id,
                   CASE WHEN o.Id IS NULL THEN 'added' WHEN n.Id IS NULL THEN 'removed'
                        ELSE 'changed' END AS change
            FROM {rn} n FULL OUTER JOIN {ro} o ON n.Id = o.Id
            WHERE o.Id IS NULL OR n.Id IS NULL OR ({any_diff})
            ORDER BY 1
        ) TO {lit(str(d.ids_file))} (FORMAT parquet, COMPRESSION zstd)
    """)  # fmt: skip
    if cols:
        pick = ", ".join(f"n.{q(c)} AS {q('n_' + c)}, o.{q(c)} AS {q('o_' + c)}" for c in cols)
        unions = "\nUNION ALL ".join(
            f"SELECT Id, {lit(c)} AS field, {as_text(q('o_' + c), so.field(c).type)} AS old, "
            f"{as_text(q('n_' + c), sn.field(c).type)} AS new FROM j "
            f"WHERE {cmp[i].replace('n.' + q(c), q('n_' + c)).replace('o.' + q(c), q('o_' + c))}"
            for i, c in enumerate(cols)
        )
        run(con, f"""
            COPY (
                WITH ch AS (SELECT Id FROM read_parquet({lit(str(d.ids_file))}) WHERE change = 'changed'),
                j AS MATERIALIZED (
                    SELECT n.Id AS Id, {pick}
                    FROM {rn} n JOIN ch ON ch.Id = n.Id JOIN {ro} o ON o.Id = n.Id
                )
                SELECT * FROM ({unions}) ORDER BY Id, field
            ) TO {lit(str(d.fields_file))} (FORMAT parquet, COMPRESSION zstd)
        """)  # fmt: skip
    else:
        empty = pa.schema(
            [("Id", pa.string()), ("field", pa.string()), ("old", pa.string()), ("new", pa.string())]
        )
        pq.write_table(empty.empty_table(), d.fields_file)
    row = run(
        con,
        f"SELECT count(*) FILTER (WHERE change = 'added'), count(*) FILTER (WHERE change = 'removed'), "
        f"count(*) FILTER (WHERE change = 'changed') FROM read_parquet({lit(str(d.ids_file))})",
    )[0]
    d.added, d.removed, d.changed = int(row[0]), int(row[1]), int(row[2])
    # Ids outside the candidates have the same state at both jobs, so one count is enough
    d.records_old = rp.count(obj, old)
    d.records_new = d.records_old + d.added - d.removed
    return d


def resolve_pair(rp: RecoveryPoints, job: str | None, against: str | None) -> tuple[str, str]:
    """(N, M): N defaults to the newest job, M to the job before N in the same cycle."""
    return resolve_jobs(rp.snapshots, job, against)


def resolve_jobs(snapshots: Snapshots, job: str | None, against: str | None) -> tuple[str, str]:
    """:func:`resolve_pair` over the manifests alone (validating a compare reads no chunk)."""
    n = snapshots.job(job)
    if against is None:
        prev = snapshots.previous(n.job_id)
        if prev is None:
            raise NoPreviousJob(job=n.job_id)
        return n.job_id, prev.job_id
    m = snapshots.job(against)
    if m.cycle_id != n.cycle_id:
        raise JobNotInCycle(job=m.job_id, cycle=m.cycle_id, expected=n.cycle_id, other=n.job_id)
    return n.job_id, m.job_id


def compare(rp: RecoveryPoints, job: str | None = None, against: str | None = None, *,
            objects: Sequence[str] | None = None,
            ignore_fields: Sequence[str] = DEFAULT_IGNORED) -> Comparison:  # fmt: skip
    """Compare the recovery points at ``job`` (N) and ``against`` (M) of one cycle; see the module doc."""
    n, m = resolve_pair(rp, job, against)
    have_n = set(rp.snapshots.objects(n))
    have_m = set(rp.snapshots.objects(m))
    names = sorted(have_n | have_m) if objects is None else list(objects)
    out: dict[str, ObjectDiff] = {}
    for obj in names:
        if obj not in have_n and obj not in have_m:
            raise ObjectNotInBackup(object=obj, org=rp.org, job=n)
        out[obj] = _diff_object(rp, obj, n if obj in have_n else None, m if obj in have_m else None,
                                ignore_fields)  # fmt: skip
    return Comparison(rp.org, n, m, out)


# --- statistics (the Data view) ------------------------------------------------------------


@dataclass
class ObjectStats:
    job: str
    object: str
    type: str
    records: int
    backup_bytes: int
    added: int
    changed: int
    removed: int
    rest_calls: int
    bulk_jobs: int
    captured: bool
    as_of: str = "this_job"
    """this_job, or earlier_job when the job did not capture the object (see ``as_of_job``)."""
    as_of_job: str | None = None
    """The newest job of the cycle that captured the object (the records are as of that job)."""
    api_calls: int = 0
    """The job's calls for the object against ``DailyApiRequests`` (:func:`engine.model.api_calls_of`:
    ``rest_calls`` + ``bulk2_calls`` + ``bulk1_calls``)."""
    bulk2_calls: int = 0
    bulk1_calls: int = 0
    bulk1_batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StatsFilter:
    """The Data view's filters: object types and inclusive ranges of counts (None = open)."""

    types: frozenset[str] = frozenset()
    min_added: int | None = None
    max_added: int | None = None
    min_changed: int | None = None
    max_changed: int | None = None
    min_removed: int | None = None
    max_removed: int | None = None

    def keep(self, s: ObjectStats) -> bool:
        if self.types and s.type not in self.types:
            return False
        for value, lo, hi in ((s.added, self.min_added, self.max_added),
                              (s.changed, self.min_changed, self.max_changed),
                              (s.removed, self.min_removed, self.max_removed)):  # fmt: skip
            if lo is not None and value < lo:
                return False
            if hi is not None and value > hi:
                return False
        return True


def job_stats(rp: RecoveryPoints, job: str | None = None, *, filter: StatsFilter | None = None,
              ignore_fields: Sequence[str] = DEFAULT_IGNORED) -> list[ObjectStats]:  # fmt: skip
    """Per object at ``job``: records, backup size, added/changed/removed since the previous job, API use.

    ``backup_bytes`` is the sealed size the job stored for the object (data, deletion and sweep
    chunks); the API calls (by API, :func:`engine.model.api_calls_of`) and ``bulk_jobs`` come from
    the manifest (0 where the job did not capture the object).
    The first job of a cycle counts every record as added.
    """
    f = filter or StatsFilter()
    target = rp.snapshots.job(job)
    prev = rp.snapshots.previous(target.job_id)
    out: list[ObjectStats] = []
    chain = rp.snapshots.chain(target.job_id)
    for obj in rp.snapshots.objects(target.job_id):
        entry = target.objects.get(obj)
        calls = entry.api_calls if entry is not None else {}
        by_api = api_calls_of(calls)
        base_prev = base_index(chain[:-1], obj) if prev is not None else None
        d = _diff_object(rp, obj, target.job_id, prev.job_id if base_prev is not None and prev else None,
                         ignore_fields)  # fmt: skip
        a = object_as_of(chain, obj)
        s = ObjectStats(
            job=target.job_id, object=obj, type=object_type(obj), records=d.records_new,
            backup_bytes=entry.bytes if entry is not None else 0,
            added=d.added, changed=d.changed, removed=d.removed,
            rest_calls=by_api.rest if by_api.total else int(calls.get("rest_calls", 0)),
            bulk_jobs=int(calls.get("bulk2_jobs_created", calls.get("bulk2_jobs", 0))),
            captured=captured(target, obj), as_of=a.as_of, as_of_job=a.as_of_job,
            api_calls=by_api.total, bulk2_calls=by_api.bulk2, bulk1_calls=by_api.bulk1,
            bulk1_batches=by_api.bulk1_batches,
        )  # fmt: skip
        if f.keep(s):
            out.append(s)
    return out


def job_calls(rp: RecoveryPoints, job: str | None = None) -> ApiCalls:
    """The job's API calls by API, from its manifest's usage record (the same figure the CLI,
    the job report and ``/usage`` show; objects' calls do not add up to it, the job's own
    discovery calls are not any object's)."""
    return rp.snapshots.job(job).job.usage.calls_by_api()


def blob_columns(schema: pa.Schema) -> list[str]:
    """The ``<Field>__sfvault_blob`` columns of a state (file bodies in the repository)."""
    return [n for n in schema.names if n.endswith(BLOB_SUFFIX)]
