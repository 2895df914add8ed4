"""Compare details carry ISO-8601 timestamps (issue 15, finding 19): the changed fields' old and
new values of a timestamp field read ``2026-01-01T00:01:00.000Z``, not DuckDB's ``2026-01-01
00:01:00+00``, whatever the session's time zone."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from engine.config import Settings
from engine.diff.compare import compare
from engine.jobs.exports import recovery_points
from tests.helpers.diff_snapshots import ChainWriter, RandomOrg, new_repository

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_changed_timestamps_are_iso_8601_utc(tmp_path: Path) -> None:
    repo = new_repository(tmp_path)
    org = RandomOrg(9)
    org.seed_rows(25)
    w = ChainWriter(repo, "acme")
    full = w.commit("full", {"Account": org.full()}).job_id
    since = org.now
    org.churn(6)
    inc = w.commit("incremental", {"Account": org.incremental(since, sweep=True)}).job_id
    settings = Settings(scratch_dir=tmp_path / "scratch")
    with recovery_points(settings, repo, "acme") as rp:
        rp.con.sql("SET TimeZone = 'America/Los_Angeles'")
        d = compare(rp, inc, full, objects=["Account"], ignore_fields=()).objects["Account"]
        assert d.fields_file is not None
        rows = pq.read_table(d.fields_file).to_pylist()
    stamps = [r for r in rows if r["field"] == "SystemModstamp"]
    assert stamps, "the churn touched SystemModstamp"
    for r in stamps:
        for value in (r["old"], r["new"]):
            assert ISO_UTC.match(value), value
            assert datetime.fromisoformat(value).utcoffset() is not None
