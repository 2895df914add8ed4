"""Sealing throughput: Arrow → Parquet → encrypt → local put, against the same Parquet unencrypted.

Both paths run in the same process on the same generated record batches (record-like columns:
18-character Ids, names, e-mails, long descriptions, timestamps, decimals, flags), through the
same :class:`~engine.sink.chunks.ChunkWriter` (buffer, sort by Id, pinned zstd Parquet, cut at
``--chunk-mib``). The only difference is the store behind it:

* ``plain``: the Parquet bytes are written to a local file and fsynced;
* ``sealed``: the production path: HMAC id, AES-256-GCM sealing with re-open/re-hash verification,
  SHA-256 of the sealed bytes, and a put through the production backend stack
  (retries + metrics over the local backend: temp file, fsync, link).

Throughput is Arrow bytes in per second; the ratio sealed / plain must be >= 0.7. Then upload and
download MB/s of a sealed object to a real Azurite (started like the test fixture does).

    .venv/bin/python -m benchmarks.seal_bench --gib 2
    .venv/bin/python -m benchmarks.seal_bench --tiny     # smoke run (used by the test suite)

Results: a JSON file in ``benchmarks/results/`` and a printed table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import uuid4

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import Settings
from engine.sink.backends.azure import AzureBackend
from engine.sink.backends.local import LocalBackend
from engine.sink.chunks import ChunkWriter
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository
from engine.sink.wrappers import stack_backend

MiB = 1024 * 1024
GiB = 1024 * MiB
RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLD = 0.7
_WORD_TEXT = (
    "acme global north south east west systems partners holdings services logistics energy health "
    "capital labs retail foods motors media bank insurance travel studio design cloud data network "
    "alpha beta gamma delta omega prime united first summit river lake forest stone bridge harbor"
)
WORDS = np.array(_WORD_TEXT.split())


def make_pool(rows: int, count: int, seed: int = 7) -> list[pa.Table]:
    """``count`` distinct record-like tables of ``rows`` rows (Ids are replaced per use)."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(count):

        def words(k: int) -> pa.Array:
            cols = [pa.array(WORDS[rng.integers(0, len(WORDS), rows)]) for _ in range(k)]
            return pc.binary_join_element_wise(*cols, " ")

        name = words(3)
        email = pc.binary_join_element_wise(
            pa.array(WORDS[rng.integers(0, len(WORDS), rows)]),
            pc.cast(pa.array(rng.integers(0, 10**6, rows)), pa.string()),
            "@example.",
        )
        desc = pc.binary_join_element_wise(
            words(8), words(8), pc.cast(pa.array(rng.integers(0, 10**9, rows)), pa.string()), ". "
        )
        base = np.datetime64("2024-01-01T00:00:00", "ms")
        created = pa.array(
            base + rng.integers(0, 3 * 365 * 86_400_000, rows).astype("timedelta64[ms]"),
            pa.timestamp("ms", tz="UTC"),
        )
        modstamp = pa.array(
            base + rng.integers(0, 3 * 365 * 86_400_000, rows).astype("timedelta64[ms]"),
            pa.timestamp("ms", tz="UTC"),
        )
        amount = pa.array(rng.integers(0, 10**9, rows), pa.int32()).cast(pa.decimal128(18, 2))
        pool.append(
            pa.table(
                {
                    "Name": name,
                    "Email": email,
                    "Description": desc,
                    "CreatedDate": created,
                    "SystemModstamp": modstamp,
                    "Amount": amount,
                    "IsDeleted": pa.array(rng.random(rows) < 0.01),
                    "NumberOfEmployees": pa.array(rng.integers(0, 10**5, rows)),
                }
            )
        )
    return pool


def batches(pool: list[pa.Table], total_bytes: int) -> Iterator[pa.Table]:
    """Record batches adding up to ``total_bytes`` of Arrow data, each with fresh 18-char Ids."""
    done = 0
    n = 0
    while done < total_bytes:
        base = pool[n % len(pool)]
        ids = pc.binary_join_element_wise(
            pa.scalar(f"001{n:05d}"),
            pc.utf8_lpad(pc.cast(pa.array(np.arange(base.num_rows)), pa.string()), 10, "0"),
            "",
        )
        table = base.add_column(0, "Id", ids)
        done += table.nbytes
        n += 1
        yield table


@dataclass
class _PlainStore:
    """Stands where ContentStore stands: writes the Parquet bytes to a file, fsynced, no crypto."""

    folder: Path
    count: int = 0

    def put_content(self, src: BinaryIO, plain_size: int, content_type: int) -> tuple[str, int, str]:
        self.count += 1
        path = self.folder / f"chunk-{self.count:05d}.parquet"
        with path.open("wb") as fh:
            while piece := src.read(4 * MiB):
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        return f"{self.count:064x}", plain_size, ""


def run_writer(store: Any, pool: list[pa.Table], total: int, chunk_bytes: int) -> dict[str, float]:
    t0 = time.perf_counter()
    arrow = 0
    with ChunkWriter(store, "Account", target_bytes=chunk_bytes, row_group_rows=128 * 1024) as writer:
        for table in batches(pool, total):
            arrow += table.nbytes
            writer.write_batch(table)
    seconds = time.perf_counter() - t0
    parquet = sum(r.plain_bytes for r in writer.refs)
    return {
        "seconds": seconds,
        "arrow_bytes": arrow,
        "parquet_bytes": parquet,
        "chunks": len(writer.refs),
        "mb_per_s": arrow / seconds / 1e6,
    }


class _Generated:
    def __init__(self, size: int) -> None:
        self.left = size
        self.block = hashlib.sha256(b"bench").digest() * (4 * MiB // 32)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.block[:n] if n <= len(self.block) else (self.block * (n // len(self.block) + 1))[:n]

    def seekable(self) -> bool:
        return False


def azurite_figures(size: int, work: Path) -> dict[str, float]:
    """Raw and sealed upload/download MB/s against a real Azurite."""
    from devkit.azurite import running_azurite

    out: dict[str, float] = {"bytes": size}
    with running_azurite(work / "azurite") as az:
        be = AzureBackend("bench", uuid4().hex, connection_string=az.connection_string)
        from engine.sink.backend import Handle, Kind

        h = Handle(Kind.CHUNK, hashlib.sha256(b"raw").hexdigest())
        t0 = time.perf_counter()
        be.put(h, _Generated(size), size)  # type: ignore[arg-type]
        out["raw_upload_mb_per_s"] = size / (time.perf_counter() - t0) / 1e6
        t0 = time.perf_counter()
        with be.get(h) as fh:
            while fh.read(4 * MiB):
                pass
        out["raw_download_mb_per_s"] = size / (time.perf_counter() - t0) / 1e6
        repo = Repository.init(stack_backend(be, wait_max=0), LocalKeyFile.create(work / "az.key"))
        body = work / "body.bin"
        with body.open("wb") as fh:
            src = _Generated(size)
            while piece := src.read(4 * MiB):
                fh.write(piece)
        t0 = time.perf_counter()
        ref = repo.put_blob(body)
        out["sealed_upload_mb_per_s"] = size / (time.perf_counter() - t0) / 1e6
        t0 = time.perf_counter()
        with repo.open_blob(ref) as fh:
            while fh.read(4 * MiB):
                pass
        out["sealed_download_mb_per_s"] = size / (time.perf_counter() - t0) / 1e6
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0, help="GiB of Arrow record data per run")
    ap.add_argument("--tiny", action="store_true", help="smoke run: a few MiB, no threshold")
    ap.add_argument("--chunk-mib", type=float, default=Settings().chunk_target_bytes / MiB)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path; the best counts")
    ap.add_argument("--azurite-mib", type=int, default=256)
    ap.add_argument("--no-azurite", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    total = int((0.02 if args.tiny else args.gib) * GiB)
    chunk = int((2 if args.tiny else args.chunk_mib) * MiB)
    az_size = (8 if args.tiny else args.azurite_mib) * MiB
    pool = make_pool(rows=20_000 if args.tiny else 150_000, count=2 if args.tiny else 6)

    result: dict[str, Any] = {
        "benchmark": "seal_bench",
        "at": datetime.now(UTC).isoformat(),
        "tiny": args.tiny,
        "arrow_bytes_per_run": total,
        "chunk_target_bytes": chunk,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="seal-bench-") as tmp:
        work = Path(tmp)
        kek = LocalKeyFile.create(work / "repo.key")
        plain_runs, sealed_runs = [], []
        for i in range(args.repeat):
            folder = work / f"plain-{i}"
            folder.mkdir()
            plain_runs.append(run_writer(_PlainStore(folder), pool, total, chunk))
            repo = Repository.init(stack_backend(LocalBackend(work / f"repo-{i}"), wait_max=0), kek)
            sealed_runs.append(run_writer(repo.store, pool, total, chunk))
        plain = max(plain_runs, key=lambda r: r["mb_per_s"])
        sealed = max(sealed_runs, key=lambda r: r["mb_per_s"])
        result["plain"], result["sealed"] = plain, sealed
        result["ratio"] = sealed["mb_per_s"] / plain["mb_per_s"]
        result["threshold"] = THRESHOLD
        if not args.no_azurite:
            result["azurite"] = azurite_figures(az_size, work)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"seal_bench-{'tiny-' if args.tiny else ''}{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print_table(result, path)
    return result


def print_table(r: dict[str, Any], path: Path) -> None:
    rows = [
        ("Arrow data per run", f"{r['arrow_bytes_per_run'] / MiB:,.0f} MiB"),
        ("chunks (target)", f"{r['sealed']['chunks']} ({r['chunk_target_bytes'] / MiB:.0f} MiB)"),
        ("Parquet written", f"{r['sealed']['parquet_bytes'] / MiB:,.0f} MiB"),
        ("plain Parquet → local file", f"{r['plain']['mb_per_s']:,.1f} MB/s ({r['plain']['seconds']:.1f} s)"),
        (
            "Parquet → seal → local put",
            f"{r['sealed']['mb_per_s']:,.1f} MB/s ({r['sealed']['seconds']:.1f} s)",
        ),
        ("ratio sealed / plain", f"{r['ratio']:.2f} (threshold {r['threshold']})"),
    ]
    az = r.get("azurite")
    if az:
        rows += [
            (f"Azurite raw upload ({az['bytes'] / MiB:.0f} MiB)", f"{az['raw_upload_mb_per_s']:,.1f} MB/s"),
            ("Azurite raw download", f"{az['raw_download_mb_per_s']:,.1f} MB/s"),
            ("Azurite seal + upload", f"{az['sealed_upload_mb_per_s']:,.1f} MB/s"),
            ("Azurite download + open", f"{az['sealed_download_mb_per_s']:,.1f} MB/s"),
        ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"results: {path}")


if __name__ == "__main__":
    res = main()
    if not res["tiny"] and res["ratio"] < THRESHOLD:
        print(f"FAIL: ratio {res['ratio']:.2f} < {THRESHOLD}", file=sys.stderr)
        sys.exit(1)
