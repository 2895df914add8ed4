"""Digests of a generated emulator org, to prove a change to the schema or the generator keeps
the generated data identical (decision 0035).

For each org (a fixed clock, a fixed seed): the SHA-256 of every describe, of every record of
every object (and of the file bodies) after ``generate``, and again after ``churn``. Run it
before and after a change and compare the JSON files it writes::

    PYTHONPATH=$PWD .venv/bin/python scripts/emulator_digest.py before.json   # on the old code
    PYTHONPATH=$PWD .venv/bin/python scripts/emulator_digest.py after.json    # on the new code
    cmp before.json after.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from emulator.churn import churn
from emulator.clock import EmulatorClock
from emulator.generator import generate
from emulator.schema import build_schema, describe_global, describe_object
from emulator.schema_data import load_description, wide_org
from emulator.store import OrgStore

ORGS = ((2, 20_000, 7, 0), (4, 5_000, 42, 0), (2, 3_000, 5, 300))
"""(custom objects, scale, seed, wide-org objects)."""


def per_object(store: OrgStore) -> dict[str, str]:
    """``object -> "rows:sha256"`` over every record in Id order, and the file bodies."""
    return {name: f"{rows}:{sha}" for name, (rows, sha) in store.object_digests().items()}


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def digest_org(custom: int, scale: int, seed: int, wide: int) -> dict[str, Any]:
    extra, rows = load_description(wide_org(wide, seed) if wide else {})
    schema = build_schema(custom, extra)
    describes = [describe_global(schema, "62.0")] + [
        describe_object(o, "62.0", schema) for o in schema.values()
    ]
    clock = EmulatorClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    store = OrgStore(None, schema=schema, clock=clock)
    try:
        counts = generate(store, scale, seed, file_body_bytes=512, described_rows=rows)
        generated = per_object(store)
        clock.advance(3600)
        churn(store, 10.0, seed + 1)
        churned = per_object(store)
    finally:
        store.close()
    records = sum(counts.values())
    print(f"custom={custom} scale={scale} seed={seed} wide={wide}: {len(schema)} objects, {records} records")
    print(f"  every describe               sha256={_sha(describes)}")
    print(f"  every record after generate  sha256={_sha(generated)}")
    print(f"  every record after churn     sha256={_sha(churned)}")
    return {"describe": _sha(describes), "generate": generated, "churn": churned}


def main(path: str) -> None:
    out = {str(org): digest_org(*org) for org in ORGS}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
