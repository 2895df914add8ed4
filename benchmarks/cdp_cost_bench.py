"""API cost of continuous data protection: what change events and a recovery point over them cost
in Salesforce API calls.

A private emulator (TLS, its own Pub/Sub server) with Account and Contact selected for Change Data
Capture, a local encrypted repository, a SQLite catalog, a Dask LocalCluster (one in-process
worker) and the real subscriber (:func:`engine.jobs.cdp.run_subscribers`). Steps:

1. a full backup: the recovery point's base snapshot (its API calls are the backup's);
2. the subscriber starts; the emulator's churn (admin route: no API call) makes ``--events`` change
   events of the protected objects; the subscriber commits them all in segments;
3. ``make_recovery_point`` at the instant after the last event (every event lies between the base
   snapshot and T).

The calls are counted by the org itself: the emulator's ``DailyApiRequests`` counter (every REST,
Bulk and composite request under ``/services/data``), read before and after steps 2 and 3. Run::

    PYTHONPATH=. python -m benchmarks.cdp_cost_bench --events 10000 30000 100000 --scale 10000 --percent 20

and it prints one JSON line per event count (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devkit.backup_env import BackupEnv, backup_env
from engine.jobs.cdp import CdpOptions, TopicSubscriber, connect_pubsub, run_subscribers
from engine.jobs.recovery_point import make_recovery_point
from engine.sink.segments import SegmentStore

OBJECTS = ["Account", "Contact"]
API = "DailyApiRequests"


def _api_used(env: BackupEnv) -> int:
    return int(env.em.admin("GET", "/limits")["used"].get(API, 0))


def _bus(env: BackupEnv) -> int:
    by = env.em.admin("GET", "/pubsub")["events_by_entity"]
    return sum(int(by.get(o, 0)) for o in OBJECTS)


def _committed(env: BackupEnv, org: str) -> int:
    with env.repo() as repo:
        store = SegmentStore(repo)
        return sum(s.events for o in OBJECTS for s in store.segments(org, o))


def _wait(cond: Any, what: str, timeout: float, alive: threading.Thread | None = None) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        if alive is not None and not alive.is_alive():  # the subscribers stopped (an error): say so
            raise RuntimeError(f"the subscribers stopped before {what}")
        time.sleep(0.5)  # a benchmark, not a test: polls the repository


def measure(env: BackupEnv, org: str, events: int, percent: float, seed: int) -> dict[str, Any]:
    """One run over a fresh org name (its own chain and base backup) on ``env``'s emulator."""
    env.add_org(org)
    opts = CdpOptions(segment_events=5000, heartbeat_s=1.0, retry_wait_max=0)
    results: list[Any] = []
    started: list[TopicSubscriber] = []
    client, rest = connect_pubsub(env.settings, org)
    t0 = time.monotonic()

    def run() -> None:
        with env.repo() as repo:
            results.extend(
                run_subscribers(repo, org, OBJECTS, client, opts, on_start=started.append, rest=rest)
            )

    th = threading.Thread(target=run, daemon=True)
    th.start()
    _wait(
        lambda: len(started) == len(OBJECTS) and all(s.since is not None for s in started), "subscribed", 120
    )
    a0 = _api_used(env)
    base = env.backup(org)
    assert base.state == "succeeded", base.error_message
    a1 = _api_used(env)
    bus0, rounds = _bus(env), 0
    while _bus(env) - bus0 < events:
        env.em.admin("POST", "/churn", json={"percent": percent, "seed": seed + rounds, "purges": False})
        rounds += 1
    made = _bus(env) - bus0
    churn_s = time.monotonic() - t0
    _wait(lambda: sum(s.result.events for s in started) >= made, "events committed", 3600, alive=th)
    at = datetime.fromisoformat(env.em.admin("GET", "/clock")["now"]).replace(tzinfo=UTC)
    _wait(lambda: all((c := s.checkpoint) is not None and c.covered >= at for s in started), "covered", 600)
    opts.stop.set()
    th.join(timeout=600)
    a2 = _api_used(env)
    t1 = time.monotonic()
    rp = make_recovery_point(env.settings, org, at, OBJECTS)
    rp_s = time.monotonic() - t1
    a3 = _api_used(env)
    client.close()
    rest.close()
    return {
        "bench": "cdp_cost", "events_requested": events, "events": sum(r.events for r in results),
        "events_in_recovery_point": sum(int(f["events"]) for f in rp.objects.values()),
        "churn_rounds": rounds, "api_calls_base_backup": a1 - a0, "api_calls_events": a2 - a1,
        "api_calls_recovery_point": a3 - a2, "gap_records_refetched": sum(r.gap_records for r in results),
        "subscriber_errors": [str(r.error) for r in results if r.error is not None],
        "events_and_churn_s": round(churn_s, 1), "recovery_point_s": round(rp_s, 1),
        "rows": {o: int(f["rows"]) for o, f in rp.objects.items()},
    }  # fmt: skip


def run(events: list[int], scale: int, percent: float) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="sfv-cdpcost-"))
    with backup_env(root, scale=scale, seed=23, processes=False, n_workers=1, tls=True) as env:
        env.em.admin("POST", "/pubsub/cdc", json={"entities": OBJECTS})
        env.em.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.5})
        # the default daily delivery allocation (50,000 events, as an org without the Change Data
        # Capture add-on) would stop the subscribers with SFV-453 part way: an org protecting this
        # volume buys the add-on
        env.em.admin("POST", "/pubsub/allocation", json={"max": 10 * sum(events) + 100_000, "used": 0})
        env.settings = env.settings.model_copy(update={"pubsub_endpoint": str(env.em.info["pubsub_url"]),
                                                       "scratch_dir": root / "scratch"})  # fmt: skip
        out = []
        for n in events:
            out.append(measure(env, f"cost{n}", n, percent, 1000 * (n + 1)))
            print(json.dumps(out[-1]), flush=True)  # each figure as soon as it is measured
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[100_000, 300_000])
    ap.add_argument("--scale", type=int, default=20_000)
    ap.add_argument("--percent", type=float, default=30.0, help="churn per round, %% of live rows")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    lines = [json.dumps(r) for r in run(a.events, a.scale, a.percent)]
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
