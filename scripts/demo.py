"""``make demo`` (until the backup engine exists): an emulated org, downloaded with simple-salesforce.

Starts the Salesforce org emulator in its own process (about 200k generated records, https with
a self-signed certificate), logs in with simple-salesforce exactly as against a real org
(username, password, security token at https://login.salesforce.com, which the session we hand
it routes to the emulator), downloads the main objects with Bulk API 2.0 and prints counts and
throughput.

    .venv/bin/python scripts/demo.py [--scale 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from simple_salesforce import Salesforce  # noqa: E402

from emulator.launcher import salesforce_session, start_emulator  # noqa: E402

OBJECTS = ("Account", "Contact", "Lead", "Opportunity", "Case", "Task", "Event", "Invoice__c", "Shipment__c")
SKIP_TYPES = ("address", "location", "base64")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Emulated org + simple-salesforce Bulk 2.0 download")
    parser.add_argument("--scale", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    console = Console()

    with console.status(f"starting the emulator and generating {args.scale:,} records ..."):
        t0 = time.perf_counter()
        em = start_emulator(scale=args.scale, seed=args.seed, tls=True, timeout=600)
        startup = time.perf_counter() - t0
    console.print(f"emulator ready at [bold]{em.url}[/] in {startup:.1f}s (profile fast)")
    try:
        i = em.info
        sf = Salesforce(
            username=i["username"],
            password=i["password"],
            security_token=i["security_token"],
            session=salesforce_session(i),
        )
        console.print(f"simple-salesforce logged in as {i['username']} -> {sf.sf_instance}")
        table = Table(title="Bulk API 2.0 download with simple-salesforce")
        for col, justify in (
            ("object", "left"),
            ("rows", "right"),
            ("expected", "right"),
            ("columns", "right"),
            ("MB", "right"),
            ("seconds", "right"),
            ("MB/s", "right"),
            ("rows/s", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        total_rows = total_bytes = 0
        total_time = 0.0
        ok = True
        for obj in OBJECTS:
            fields = [f["name"] for f in getattr(sf, obj).describe()["fields"] if f["type"] not in SKIP_TYPES]
            expected = sf.query(f"SELECT COUNT() FROM {obj}")["totalSize"]
            t1 = time.perf_counter()
            rows = size = 0
            for chunk in getattr(sf.bulk2, obj).query(
                f"SELECT {', '.join(fields)} FROM {obj}", max_records=50_000, wait=0.05
            ):
                size += len(chunk.encode())
                rows += sum(1 for _ in csv.reader(io.StringIO(chunk))) - 1
            dt = time.perf_counter() - t1
            ok = ok and rows == expected
            total_rows, total_bytes, total_time = total_rows + rows, total_bytes + size, total_time + dt
            table.add_row(
                obj,
                f"{rows:,}",
                f"{expected:,}" + ("" if rows == expected else " [red]MISMATCH[/]"),
                str(len(fields)),
                f"{size / 1e6:.1f}",
                f"{dt:.2f}",
                f"{size / 1e6 / dt:.1f}",
                f"{rows / dt:,.0f}",
            )
        table.add_row(
            "[bold]total[/]",
            f"{total_rows:,}",
            "",
            "",
            f"{total_bytes / 1e6:.1f}",
            f"{total_time:.2f}",
            f"{total_bytes / 1e6 / total_time:.1f}",
            f"{total_rows / total_time:,.0f}",
        )
        console.print(table)
        usage = sf.api_usage.get("api-usage")
        if usage is not None:
            console.print(f"API usage reported by the org: {usage.used:,} / {usage.total:,} requests")
        if not ok:
            console.print("[red]row counts do not match the org[/]")
            return 1
        return 0
    finally:
        em.stop()


if __name__ == "__main__":
    sys.exit(main())
