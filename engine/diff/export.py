"""Record and file exports into an AES-encrypted ZIP (the stage part; rules live in engine.jobs.exports).

:func:`export_records` writes one file per object (CSV or MySQL ``.sql``) for scope ``changed``
or ``cycle`` at a job, plus ``removed.csv`` (Ids removed since the previous job, scope ``changed``)
and ``manifest.csv`` (object, rows, file, bytes, as_of, as_of_job: see :data:`MANIFEST_COLUMNS`).
:func:`export_files` writes the bodies of file
objects (Attachment, Document, StaticResource, ContentVersion, MailMergeTemplate) under
``<Object>/<Id>/<original name>`` plus ``index.csv``. Each object is first written to the scratch
folder, then streamed into the archive and deleted, so the scratch holds one object at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.diff.archive import ArchiveWriter, generate_password
from engine.diff.compare import FILE_OBJECTS, blob_columns
from engine.diff.export_csv import write_csv
from engine.diff.export_mysql import write_mysql
from engine.diff.recovery import BLOB_SUFFIX, RecoveryPoints
from engine.diff.selection import Scope, select_rows
from engine.errors import ObjectNotInBackup
from engine.model import BlobRef, ObjectAsOf

Format = Literal["csv", "mysql"]
NAME_FIELDS = ("PathOnClient", "Filename", "Name", "Title", "DeveloperName")
MANIFEST_COLUMNS = ["object", "rows", "file", "bytes", "as_of", "as_of_job"]
"""``manifest.csv`` of a records export, one row per object. ``as_of`` says which job the object's
data is as of: ``this_job`` (the exported job captured it), ``earlier_job`` (the job did not
capture it, e.g. it failed there: the data is as of ``as_of_job``, the newest job of the cycle
that captured it) or ``absent`` (no job of the cycle captured it: no file, empty rows and bytes;
listed only when every object is exported)."""


@dataclass(frozen=True)
class ExportProgress:
    """One progress report: ``done`` of ``total`` objects, bytes written into the archive so far."""

    object: str
    done: int
    total: int
    rows: int
    bytes: int


ProgressFn = Callable[[ExportProgress], None]


@dataclass
class ExportResult:
    path: Path
    password: str
    job: str
    size_bytes: int
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    plain_bytes: int = 0
    as_of: list[ObjectAsOf] = field(default_factory=list)
    """Per object, which job its data is as of (absent objects included when all were asked for)."""

    @property
    def stale(self) -> list[ObjectAsOf]:
        """The objects that are not as of the exported job (as of an earlier job, or absent)."""
        return [a for a in self.as_of if not a.current]


def _check_objects(rp: RecoveryPoints, job: str, objects: Sequence[str] | None) -> list[str]:
    have = rp.snapshots.objects(job)
    if objects is None:
        return have
    for o in objects:
        if o not in have:
            raise ObjectNotInBackup(object=o, org=rp.org, job=job)
    return list(objects)


def export_as_of(rp: RecoveryPoints, job: str, objects: Sequence[str] | None, *,
                 files: bool = False) -> list[ObjectAsOf]:  # fmt: skip
    """Per object of an export at ``job``, which job its data is as of, by name.

    ``objects=None`` (every object; the file objects for a files export) also lists the objects
    that no job of the cycle captured, as ``absent``.
    """
    if objects is not None:
        return rp.snapshots.as_of(job, objects)
    return [a for a in rp.snapshots.as_of(job) if not files or a.object in FILE_OBJECTS]


def estimate_bytes(rp: RecoveryPoints, job: str | None, objects: Sequence[str] | None) -> int:
    """Plain Parquet bytes of the chunks of the chain for ``objects`` (a cheap upper estimate)."""
    target = rp.snapshots.job(job).job_id
    names = set(_check_objects(rp, target, objects))
    total = 0
    for m in rp.snapshots.chain(target):
        for n, e in m.objects.items():
            if n in names:
                total += sum(c.plain_bytes for c in e.chunks)
                total += sum(b.plain_bytes for b in e.blobs)
    return total


def export_records(rp: RecoveryPoints, out: Path | str, *, fmt: Format, scope: Scope, job: str | None = None,
                   objects: Sequence[str] | None = None, password: str | None = None,
                   progress: ProgressFn | None = None) -> ExportResult:  # fmt: skip
    """Export records into an AES-256 ZIP at ``out``; the result carries the (generated) password."""
    target = rp.snapshots.job(job).job_id
    names = _check_objects(rp, target, objects)
    password = password or generate_password()
    result = ExportResult(Path(out), password, target, 0)
    ext = "csv" if fmt == "csv" else "sql"
    result.as_of = export_as_of(rp, target, objects)
    as_of = {a.object: a for a in result.as_of}
    manifest_rows: list[list[Any]] = []
    removed = rp.scratch.file("export-removed.csv")
    with ArchiveWriter(out, password) as zw, removed.open("w", newline="", encoding="utf-8") as rfh:
        rw = csv.writer(rfh, lineterminator="\r\n")
        rw.writerow(["object", "Id"])
        for i, obj in enumerate(names):
            sel = select_rows(rp, obj, target, scope)
            tmp = rp.scratch.file(f"export-{i}.{ext}")
            n = write_csv(rp, sel, tmp) if fmt == "csv" else write_mysql(rp, sel, tmp)
            rows = sel.count(rp)
            zw.add_file(f"{obj}.{ext}", tmp)
            tmp.unlink()
            result.rows[obj] = rows
            result.plain_bytes += n
            manifest_rows.append([obj, rows, f"{obj}.{ext}", n, as_of[obj].as_of, as_of[obj].as_of_job or ""])
            if sel.diff is not None:
                for rid in sel.diff.iter_ids("removed"):
                    rw.writerow([obj, rid])
            if progress is not None:
                progress(ExportProgress(obj, i + 1, len(names), rows, result.plain_bytes))
        manifest_rows.extend([a.object, "", "", "", a.as_of, ""] for a in result.as_of if a.as_of == "absent")
        _csv_member(zw, "manifest.csv", MANIFEST_COLUMNS, manifest_rows)
        if scope == "changed":
            rfh.flush()
            zw.add_file("removed.csv", removed)
    result.size_bytes = Path(out).stat().st_size
    return result


def _csv_member(zw: ArchiveWriter, name: str, header: list[str], rows: list[list[Any]]) -> None:
    with zw.member(name) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        w = csv.writer(text, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)
        text.flush()
        text.detach()


def _blob_refs(rp: RecoveryPoints, job: str, obj: str) -> dict[str, BlobRef]:
    refs: dict[str, BlobRef] = {}
    for m in rp.snapshots.chain(job):
        e = m.objects.get(obj)
        if e is not None:
            refs.update((b.name, b) for b in e.blobs)
    return refs


def export_files(rp: RecoveryPoints, out: Path | str, *, scope: Scope, job: str | None = None,
                 objects: Sequence[str] | None = None, password: str | None = None,
                 progress: ProgressFn | None = None) -> ExportResult:  # fmt: skip
    """Export file bodies (with their original names) and ``index.csv`` into an AES-256 ZIP."""
    target = rp.snapshots.job(job).job_id
    have = rp.snapshots.objects(target)
    names = [o for o in have if o in FILE_OBJECTS] if objects is None else _check_objects(rp, target, objects)
    password = password or generate_password()
    result = ExportResult(Path(out), password, target, 0, as_of=export_as_of(rp, target, objects, files=True))
    index: list[list[Any]] = []
    with ArchiveWriter(out, password) as zw:
        for i, obj in enumerate(names):
            sel = select_rows(rp, obj, target, scope)
            refs = _blob_refs(rp, target, obj)
            bcols = blob_columns(sel.schema)
            name_col = next((c for c in NAME_FIELDS if c in sel.schema.names), None)
            rows = 0
            for batch in sel.batches(rp, batch_rows=1000):
                ids = batch.column("Id").to_pylist()
                fnames = batch.column(name_col).to_pylist() if name_col else [None] * len(ids)
                for bc in bcols:
                    field_name = bc[: -len(BLOB_SUFFIX)]
                    for rid, fname, blob in zip(ids, fnames, batch.column(bc).to_pylist(), strict=True):
                        original = str(fname) if fname else rid
                        ref = refs.get(blob) if blob else None
                        if ref is None:
                            index.append([obj, rid, field_name, original, "", "", blob or "", "unavailable"])
                            continue
                        member = (
                            f"{obj}/{rid}/{original}"
                            if len(bcols) == 1
                            else f"{obj}/{rid}/{field_name}/{original}"
                        )
                        with rp.source.open_blob(ref) as src, zw.member(member) as dst:
                            while piece := src.read(1 << 20):
                                dst.write(piece)
                        result.files += 1
                        result.plain_bytes += ref.plain_bytes
                        index.append(
                            [obj, rid, field_name, original, zw.members[-1], ref.plain_bytes, ref.name, "ok"]
                        )
                rows += batch.num_rows
            result.rows[obj] = rows
            if progress is not None:
                progress(ExportProgress(obj, i + 1, len(names), rows, result.plain_bytes))
        header = ["object", "Id", "field", "file_name", "path", "bytes", "blob", "status"]
        _csv_member(zw, "index.csv", header, index)
    result.size_bytes = Path(out).stat().st_size
    return result
