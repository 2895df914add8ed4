"""Recovery-point objective of continuous data protection: from a commit in the emulator to the
change being durable in the repository (its segment manifest written), p50 and p99.

A private emulator (TLS, its own Pub/Sub server) with Account and Contact selected for Change Data
Capture, a local encrypted repository, the org connected in a SQLite catalog, and the real
subscriber (:mod:`engine.jobs.cdp`, one thread per object). Steady churn: ``--writers`` threads
send single-record REST updates (one transaction, one change event each) until ``--changes``
changes were made. Per change: the segment manifest's write returned (engine clock) minus the
event's ``commitTimestamp`` (the emulator's clock; the same machine). Run it with::

    PYTHONPATH=. python -m benchmarks.cdp_rpo_bench --changes 10000

and it prints one JSON line (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from devkit.backup_env import BackupEnv, make_settings
from emulator.launcher import start_emulator
from engine.jobs.cdp import CdpOptions, TopicSubscriber, connect_pubsub
from engine.sink.repository import open_repository
from engine.sink.segments import SegmentManifest, SegmentStore

OBJECTS = ("Account", "Contact")


class TimedStore(SegmentStore):
    """Records, per committed segment, when its manifest write returned (the change is durable)."""

    def __init__(self, repo: Any) -> None:
        super().__init__(repo)
        self.lat_ms: list[float] = []
        self.lock = threading.Lock()

    def write(self, seg: SegmentManifest, rows: Any) -> SegmentManifest:
        out = super().write(seg, rows)
        durable = time.time() * 1000
        if rows is not None:
            commits = rows.column("__commit_ts").cast("int64").to_pylist()
            with self.lock:
                self.lat_ms.extend(durable - c for c in commits)
        return out


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 1) if s else float("nan")


def run(changes: int, writers: int, segment_events: int, segment_age: float, scale: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="sfv-rpo-"))
    em = start_emulator(scale=scale, seed=5, tls=True, timeout=300)
    try:
        em.admin("POST", "/pubsub/cdc", json={"entities": list(OBJECTS)})
        settings = make_settings(root).model_copy(update={"pubsub_endpoint": str(em.info["pubsub_url"])})
        BackupEnv(em=em, settings=settings, dask=None).add_org("rpo")
        client, rest = connect_pubsub(settings, "rpo")
        repo = open_repository(settings)
        store = TimedStore(repo)
        opts = CdpOptions(segment_events=segment_events, segment_age_s=segment_age, retry_wait_max=0)
        subs = [TopicSubscriber("rpo", o, client, store, opts) for o in OBJECTS]
        threads = [threading.Thread(target=s.run, daemon=True) for s in subs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not all(s.since is not None for s in subs) and time.monotonic() < deadline:
            time.sleep(0.05)  # a benchmark, not a test: wait for the subscriptions to be in place
        ids = {o: [str(r[0]) for r in em.sql(f"SELECT Id FROM sf_{o.lower()} WHERE NOT IsDeleted LIMIT 2000")]
               for o in OBJECTS}  # fmt: skip
        started = time.monotonic()
        token = em.token()

        def write(n: int) -> None:
            with httpx.Client(base_url=em.url, verify=em.verify, trust_env=False, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:  # fmt: skip
                for k in range(n, changes, writers):
                    o = OBJECTS[k % 2]
                    r = ids[o][(k // 2) % len(ids[o])]
                    c.patch(f"/services/data/v62.0/sobjects/{o}/{r}", json={"Description": f"rpo {k}"})

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))
        churn_s = time.monotonic() - started
        while len(store.lat_ms) < changes and time.monotonic() - started < churn_s + 120:
            time.sleep(0.1)
        em.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.1})  # the streams see the stop
        opts.stop.set()
        result = {
            "bench": "cdp_rpo", "changes": changes, "durable": len(store.lat_ms), "writers": writers,
            "segment_events": segment_events, "segment_age_s": segment_age, "emulator_scale": scale,
            "churn_changes_per_s": round(changes / churn_s, 1), "p50_ms": _pct(store.lat_ms, 50),
            "p99_ms": _pct(store.lat_ms, 99), "max_ms": _pct(store.lat_ms, 100),
        }  # fmt: skip
        for t in threads:
            t.join(timeout=30)
        repo.close()
        client.close()
        rest.close()
        return result
    finally:
        em.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--segment-events", type=int, default=1000)
    ap.add_argument("--segment-age", type=float, default=5.0)
    ap.add_argument("--scale", type=int, default=20_000)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    res = run(a.changes, a.writers, a.segment_events, a.segment_age, a.scale)
    line = json.dumps(res)
    print(line)
    if a.out:
        a.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
