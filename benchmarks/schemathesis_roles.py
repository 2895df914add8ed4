"""Schemathesis over the whole API with each role's token, at scale (issue 15).

Runs ``tests/api/test_openapi.py::test_no_500_and_responses_match_the_schema`` (every operation of
``/openapi.json`` but ``POST /v1/orgs``, once per role: admin, operator, viewer) with
``--examples`` hypothesis examples per operation and role instead of the suite's 12, so the
total passes 10,000 cases; each case is checked for no 5xx, a response that conforms to its
documented schema, and a documented content type. The suite's run stays a few hundred cases per
role; this is the long run, kept out of CI.

Prints the cases per role, the total, and the pytest outcome; writes
``benchmarks/results/schemathesis_roles.json``. Exits non-zero when a case failed.

    .venv/bin/python -m benchmarks.schemathesis_roles [--examples 150]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/api/test_openapi.py::test_no_500_and_responses_match_the_schema"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=150, help="hypothesis examples per operation and role")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cases.json"
        env = {**os.environ, "SFVAULT_SCHEMATHESIS_EXAMPLES": str(args.examples),
               "SFVAULT_SCHEMATHESIS_REPORT": str(report)}  # fmt: skip
        began = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - began
        counts = json.loads(report.read_text()) if report.exists() else {"cases": {}, "total": 0}
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    result = {"examples_per_operation": args.examples, **counts, "seconds": round(seconds, 1),
              "pytest": summary, "exit_code": proc.returncode}  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "schemathesis_roles.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for role, n in sorted(counts["cases"].items()):
        print(f"{role:>9}: {n:>6} cases")
    print(f"{'total':>9}: {counts['total']:>6} cases in {seconds:.0f} s; pytest: {summary}")
    if proc.returncode != 0:
        print(proc.stdout[-20000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
