"""Compare and export: a large object in two consecutive snapshots with 1% churn (issue 6).

Setup (not timed): an Account-like object of ``--records`` rows (Id, Name, Email, Phone,
Description, Amount decimal(18,2), Active, CreatedDate, SystemModstamp; the schema carries the
describe facts like real chunks) is written as sealed chunks into a real encrypted repository on a
local folder and committed as a ``full`` job; then 1% of the records churn (0.5% updated, 0.25%
inserted, 0.25% deleted) and an ``incremental`` job is committed with the changed rows and a
deletion chunk, exactly as the backup jobs write them.

Measured in a fresh process (``spawn``), so its peak RSS is that of the measured work alone:

* ``decrypt``: streaming every chunk of both jobs into the scratch folder (authenticated);
* ``scan``: the baseline, a plain DuckDB scan of the same plaintext Parquet files (every column
  of every chunk of both jobs: ``SELECT max(COLUMNS(*))``), same connection settings;
* ``compare``: ``engine.diff.compare.compare(N, N-1)`` over the already decrypted files (added,
  changed, removed, and the changed fields); the ratio compare / scan is the figure (aim ≤ 3);
* then, in a second fresh process, the MySQL and CSV writers over the whole recovery point at N
  (``.sql`` / ``.csv`` file bytes per second), and the full ``export_records`` path into the
  AES-256 ZIP for both formats.

    .venv/bin/python -m benchmarks.compare_bench --records 5000000
    .venv/bin/python -m benchmarks.compare_bench --tiny        # smoke run (used by the test suite)

Results: a JSON file in ``benchmarks/results/`` and a printed table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import Settings
from engine.diff.compare import compare
from engine.diff.export import export_records
from engine.diff.export_csv import write_csv
from engine.diff.export_mysql import write_mysql
from engine.diff.recovery import RecoveryPoints, lit, run
from engine.diff.selection import select_rows
from engine.extract.csv_arrow import arrow_schema
from engine.extract.model import FieldSpec
from engine.model import Cursor, Manifest, ObjectEntry, ObjectMode
from engine.sink.backends.local import LocalBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository
from engine.sink.wrappers import stack_backend

MiB = 1024 * 1024
GiB = 1024 * MiB
RESULTS = Path(__file__).resolve().parent / "results"
ORG = "bench"
OBJ = "Account"
RATIO_AIM = 3.0
RSS_LIMIT = 2 * GiB
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = [
    FieldSpec("Id", "id", length=18),
    FieldSpec("Name", "string", length=255),
    FieldSpec("Email", "email", length=80),
    FieldSpec("Phone", "phone", length=40),
    FieldSpec("Description", "textarea", length=32_000),
    FieldSpec("Amount", "currency", precision=18, scale=2),
    FieldSpec("Active__c", "boolean"),
    FieldSpec("CreatedDate", "datetime"),
    FieldSpec("SystemModstamp", "datetime"),
]
SCHEMA = arrow_schema(FIELDS)
_WORD_TEXT = (
    "acme global north south east west systems partners holdings services logistics energy health "
    "capital labs retail foods motors media bank insurance travel studio design cloud data network "
    "alpha beta gamma delta omega prime united first summit river lake forest stone bridge harbor"
)
WORDS = np.array(_WORD_TEXT.split())


def ids(start: int, n: int) -> pa.Array:
    """18-character Account Ids ``001…AAA`` for row numbers ``start .. start + n``."""
    nums = pc.cast(pa.array(np.arange(start, start + n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise("001", pc.utf8_lpad(nums, 12, "0"), "AAA", "")


def rows(start: int, n: int, stamp: datetime, rng: np.random.Generator, tag: str = "") -> pa.Table:
    """``n`` record-like rows with row numbers from ``start``."""

    def words(k: int) -> pa.Array:
        return pc.binary_join_element_wise(
            *[pa.array(WORDS[rng.integers(0, len(WORDS), n)]) for _ in range(k)], " "
        )

    num = pc.cast(pa.array(rng.integers(0, 10**6, n)), pa.string())
    name = pc.binary_join_element_wise(words(2), num, tag + " Ltd")
    email = pc.binary_join_element_wise(pa.array(WORDS[rng.integers(0, len(WORDS), n)]), num, "@example.com")
    phone = pc.binary_join_element_wise("+1 555 ", pc.utf8_lpad(num, 7, "0"), "")
    desc = pc.binary_join_element_wise(words(6), words(6), ". ")
    whole = pc.cast(pa.array(rng.integers(0, 10**7, n)), pa.string())
    cents = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 100, n)), pa.string()), 2, "0")
    amount = pc.binary_join_element_wise(whole, cents, ".").cast(pa.decimal128(18, 2))
    created = pa.array(np.full(n, int(T0.timestamp() * 1000)), pa.int64()).cast(pa.timestamp("ms", "UTC"))
    modstamp = pa.array(np.full(n, int(stamp.timestamp() * 1000)), pa.int64()).cast(pa.timestamp("ms", "UTC"))
    active = pa.array(rng.random(n) < 0.5)
    cols = [ids(start, n), name, email, phone, desc, amount, active, created, modstamp]
    return pa.Table.from_arrays(cols, schema=SCHEMA)


@dataclass
class Setup:
    records: int
    changed: int
    inserted: int
    deleted: int
    parquet_bytes: int
    chunks: int
    seconds: float


def build(repo: Repository, records: int, chunk_rows: int, seed: int = 5) -> Setup:
    """Commit the full job and the 1%-churn incremental job."""
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    full: list[Any] = []
    for start in range(0, records, chunk_rows):
        full.append(repo.write_chunk(rows(start, min(chunk_rows, records - start), T0, rng), OBJ))
    j1 = Manifest(
        org=ORG,
        job_id="job-0001",
        created_at=T0 + timedelta(hours=1),
        kind="full",
        cycle_id="job-0001",
        objects={OBJ: _entry("full", chunks=full, rows=records, bytes=sum(c.sealed_bytes for c in full))},
    )
    repo.commit(j1)
    n_upd, n_ins, n_del = records // 200, records // 400, records // 400
    picks = rng.choice(records, n_upd + n_del, replace=False)
    upd, dels = np.sort(picks[:n_upd]), np.sort(picks[n_upd:])
    later = T0 + timedelta(hours=2)
    changed = rows(0, n_upd, later, rng, tag=" upd")  # new values, then the Ids of the updated rows
    changed = changed.set_column(0, "Id", pc.take(ids(0, records), pa.array(upd)))
    inserted = rows(records, n_ins, later, rng)
    inc = pa.concat_tables([changed, inserted])
    refs = [repo.write_chunk(inc.slice(i, chunk_rows), OBJ) for i in range(0, inc.num_rows, chunk_rows)]
    dtab = pa.table(
        {
            "Id": pc.take(ids(0, records), pa.array(dels)),
            "SystemModstamp": pa.array([later] * n_del, pa.timestamp("ms", "UTC")),
        }
    )
    dref = [repo.write_chunk(dtab, OBJ)]
    j2 = Manifest(
        org=ORG,
        job_id="job-0002",
        created_at=T0 + timedelta(hours=3),
        kind="incremental",
        cycle_id="job-0001",
        objects={
            OBJ: _entry(
                "incremental",
                chunks=refs,
                rows=inc.num_rows,
                deleted_ids_chunks=dref,
                bytes=sum(c.sealed_bytes for c in refs + dref),
            )
        },
    )
    repo.commit(j2)
    all_refs = full + refs + dref
    return Setup(
        records,
        n_upd,
        n_ins,
        n_del,
        sum(c.plain_bytes for c in all_refs),
        len(all_refs),
        time.perf_counter() - t,
    )


def _entry(mode: ObjectMode, **kwargs: Any) -> ObjectEntry:
    """The object's entry as the runner writes it: its mode and its cursor field."""
    return ObjectEntry(mode=mode, cursor=Cursor("SystemModstamp"), **kwargs)


def _open(work: Path) -> Repository:
    return Repository.open(
        stack_backend(LocalBackend(work / "repo"), wait_max=0), LocalKeyFile.load(work / "repo.key")
    )


def _peak_children() -> int:
    return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024


def measure_compare(work: str, memory_limit: str, threads: int, queue: Any) -> None:
    """Child process: decrypt, baseline scan, compare; puts the timings on ``queue``."""
    repo = _open(Path(work))
    out: dict[str, Any] = {}
    with RecoveryPoints(
        repo,
        ORG,
        scratch_root=Path(work) / "scratch",
        memory_limit=memory_limit,
        threads=threads,
        max_scratch_bytes=200 * GiB,
    ) as rp:
        t = time.perf_counter()
        files = [
            rp.scratch.chunk(repo, ref)
            for m in rp.snapshots.manifests
            for ref in [*m.objects[OBJ].chunks, *m.objects[OBJ].deleted_ids_chunks]
        ]
        out["decrypt_s"] = time.perf_counter() - t
        data = [str(f) for f in files[:-1]]  # the deletion chunk has another schema
        out["scratch_bytes"] = sum(f.stat().st_size for f in files)
        t = time.perf_counter()
        run(rp.con, f"SELECT max(COLUMNS(*)) FROM read_parquet([{', '.join(lit(p) for p in data)}])")
        out["scan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        c = compare(rp, "job-0002", "job-0001")
        d = c.objects[OBJ]
        n_fields = sum(1 for _ in d.field_changes())
        out["compare_s"] = time.perf_counter() - t
        out["found"] = {
            "added": d.added,
            "changed": d.changed,
            "removed": d.removed,
            "field_changes": n_fields,
            "records_new": d.records_new,
        }
    repo.close()
    queue.put(out)


def measure_exports(work: str, memory_limit: str, threads: int, queue: Any) -> None:
    """Child process: MySQL and CSV writers over the whole recovery point, then the ZIP path."""
    repo = _open(Path(work))
    out: dict[str, Any] = {}
    with RecoveryPoints(
        repo,
        ORG,
        scratch_root=Path(work) / "scratch",
        memory_limit=memory_limit,
        threads=threads,
        max_scratch_bytes=200 * GiB,
    ) as rp:
        sel = select_rows(rp, OBJ, "job-0002", "cycle")
        rp.state_file(OBJ, "job-0002")  # the recovery point itself is compare's cost, not the writers'
        for fmt, writer in (("mysql", write_mysql), ("csv", write_csv)):
            dest = rp.scratch.file(f"bench.{fmt}")
            t = time.perf_counter()
            n = writer(rp, sel, dest)
            s = time.perf_counter() - t
            out[fmt] = {"bytes": n, "seconds": s, "mb_per_s": n / s / 1e6}
            dest.unlink()
            t = time.perf_counter()
            res = export_records(rp, Path(work) / f"bench-{fmt}.zip", fmt=fmt, scope="cycle", job="job-0002")  # type: ignore[arg-type]
            s = time.perf_counter() - t
            out[fmt]["zip"] = {
                "plain_bytes": res.plain_bytes,
                "zip_bytes": res.size_bytes,
                "seconds": s,
                "mb_per_s": res.plain_bytes / s / 1e6,
            }
            (Path(work) / f"bench-{fmt}.zip").unlink()
    repo.close()
    queue.put(out)


def _child(target: Any, *args: Any) -> tuple[dict[str, Any], int]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, queue))
    p.start()
    out = queue.get()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {p.exitcode}")
    return out, _peak_children()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=5_000_000, help="records of the object in the full job")
    ap.add_argument("--tiny", action="store_true", help="smoke run: 20,000 records, no thresholds")
    ap.add_argument("--chunk-rows", type=int, default=250_000, help="rows per sealed chunk")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--no-exports", action="store_true", help="compare only")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    records = 20_000 if args.tiny else args.records
    chunk_rows = 5_000 if args.tiny else args.chunk_rows
    result: dict[str, Any] = {
        "benchmark": "compare_bench",
        "at": datetime.now(UTC).isoformat(),
        "tiny": args.tiny,
        "records": records,
        "chunk_rows": chunk_rows,
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
        "cpus": os.cpu_count(),
    }
    work = Path(tempfile.mkdtemp(prefix="compare-bench-", dir=args.work))
    try:
        kek = LocalKeyFile.create(work / "repo.key")
        repo = Repository.init(
            stack_backend(LocalBackend(work / "repo"), wait_max=0),
            kek,
            settings=Settings(row_group_rows=100_000),
        )
        setup = build(repo, records, chunk_rows)
        repo.close()
        result["setup"] = setup.__dict__
        cmp, rss = _child(measure_compare, str(work), args.memory_limit, args.threads)
        result["compare"] = cmp
        result["compare"]["ratio"] = cmp["compare_s"] / cmp["scan_s"]
        result["compare"]["ratio_with_decrypt"] = (cmp["compare_s"] + cmp["decrypt_s"]) / cmp["scan_s"]
        result["compare"]["peak_rss"] = rss
        want = {"added": setup.inserted, "changed": setup.changed, "removed": setup.deleted}
        got = {k: cmp["found"][k] for k in want}
        if got != want:
            raise AssertionError(f"compare found {got}, the churn was {want}")
        if not args.no_exports:
            exp, rss_all = _child(measure_exports, str(work), args.memory_limit, args.threads)
            result["exports"] = exp
            result["exports"]["peak_rss"] = rss_all
        result["peak_rss"] = _peak_children()
        result["aims"] = {"ratio": RATIO_AIM, "peak_rss": RSS_LIMIT}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"compare_bench-{'tiny-' if args.tiny else ''}{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print_table(result, path)
    return result


def print_table(r: dict[str, Any], path: Path) -> None:
    s, c = r["setup"], r["compare"]
    rows = [
        (
            "records (full job)",
            f"{s['records']:,} in {s['chunks']} chunks, {s['parquet_bytes'] / MiB:,.0f} MiB Parquet",
        ),
        (
            "churn (incremental job)",
            f"{s['changed']:,} changed, {s['inserted']:,} added, {s['deleted']:,} removed",
        ),
        ("setup (generate + seal)", f"{s['seconds']:.1f} s"),
        ("decrypt both jobs to scratch", f"{c['decrypt_s']:.2f} s"),
        ("plain DuckDB scan (baseline)", f"{c['scan_s']:.2f} s"),
        ("compare N vs N-1", f"{c['compare_s']:.2f} s ({c['found']['field_changes']:,} field changes)"),
        (
            "ratio compare / scan",
            f"{c['ratio']:.2f} (aim ≤ {RATIO_AIM}); with decrypt {c['ratio_with_decrypt']:.2f}",
        ),
        ("peak RSS, compare process", f"{c['peak_rss'] / MiB:,.0f} MiB (limit {RSS_LIMIT / MiB:,.0f} MiB)"),
    ]
    e = r.get("exports")
    if e:
        for fmt in ("mysql", "csv"):
            x = e[fmt]
            rows.append(
                (
                    f"{fmt} writer",
                    f"{x['mb_per_s']:,.1f} MB/s ({x['bytes'] / MiB:,.0f} MiB in {x['seconds']:.1f} s)",
                )
            )
            z = x["zip"]
            rows.append(
                (
                    f"{fmt} export into AES ZIP",
                    f"{z['mb_per_s']:,.1f} MB/s ({z['zip_bytes'] / MiB:,.0f} MiB ZIP, {z['seconds']:.1f} s)",
                )
            )
        rows.append(("peak RSS, export process", f"{e['peak_rss'] / MiB:,.0f} MiB"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"results: {path}")


if __name__ == "__main__":
    res = main()
    if not res["tiny"]:
        if res["compare"]["ratio"] > RATIO_AIM:
            print(f"NOTE: ratio {res['compare']['ratio']:.2f} > aim {RATIO_AIM}", file=sys.stderr)
        if res["peak_rss"] > RSS_LIMIT:
            print(
                f"FAIL: peak RSS {res['peak_rss'] / MiB:.0f} MiB > {RSS_LIMIT / MiB:.0f} MiB", file=sys.stderr
            )
            sys.exit(1)
