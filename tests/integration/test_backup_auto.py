"""The ``auto`` extraction strategy backs up the org exactly, each object through the API it chose.

One org, backed up with ``extraction_strategy = "auto"`` (decision 0028): its largest objects
(at least ``pk_chunking_min_rows``) through one PK-chunked Bulk API 1.0 job each, the middle ones
through Bulk API 2.0 Id ranges, the small ones through REST, the Bulk-unsupported ones through
REST ``queryAll``. After the full, and again after churn and an incremental (whose windows stay
on Bulk API 2.0 or REST), the snapshot equals the org (the emulator's rows), object by object, and
each object's manifest entry records the path and the reason; the emulator's counters show the
Bulk API 1.0 jobs really were PK-chunked (more batches than jobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.cli import app

pytestmark = pytest.mark.emulator

AUTO = replace(TEST_OPTIONS, extraction_strategy="auto", pk_chunking_min_rows=3_000, page_rows=1_000)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    root: Path = tmp_path_factory.mktemp("backup-auto")
    # ~7k records; Task made large enough for PK chunking (and it is read with queryAll: archived rows)
    with backup_env(root, scale=5_000, extra_args=["--object-rows", "Task=4000"]) as e:
        e.add_org("auto")
        yield e


def _used(env: BackupEnv) -> dict[str, int]:
    limits = env.em.admin("GET", "/limits")
    return {**limits["by_category"], **{k: v for k, v in limits["used"].items()}}


def _job_show(env: BackupEnv, job_id: str, config: Path) -> str:
    keys = ("repository_url", "key_file", "catalog_url", "scratch_dir")
    config.write_text("[sfvault]\n" + "".join(f'{k} = "{getattr(env.settings, k)}"\n' for k in keys))
    shown = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["job", "show", job_id, "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    return shown.output


def test_a_full_and_an_incremental_through_auto_equal_the_org(env: BackupEnv, tmp_path: Path) -> None:
    before = _used(env)
    full = env.backup("auto", options=AUTO)
    after = _used(env)
    assert full.state == "succeeded", full.error_message
    choices = {name: r.extraction for name, r in full.objects.items()}
    assert all(c is not None for c in choices.values()), choices
    reasons = {name: c.reason for name, c in choices.items() if c is not None}
    big = sorted(n for n, why in reasons.items() if why == "pk_chunking")
    assert big == ["Task"] and "id_ranges" in reasons.values() and "small" in reasons.values(), reasons
    for name in big:
        rep = full.objects[name]
        assert rep.path == "bulk1" and rep.partitions == 1 and rep.records >= AUTO.pk_chunking_min_rows
        assert rep.calls.get("bulk1_job", 0) > 0 and rep.calls.get("bulk2_job", 0) == 0
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # each PK-chunked job: the submitted batch plus one batch per 1,000 Ids of the object
    assert grew["DailyBulkApiBatches"] >= sum(1 + full.objects[n].records // 1_000 for n in big)
    assert grew.get("bulk1_create", 0) == len(big)
    objects = sorted(o for o, r in full.objects.items() if r.state == "succeeded")
    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "auto", objects).items() if v} == {}
        manifest = next(repo.manifests("auto", newest_first=True))
        assert {n: e.extraction for n, e in manifest.objects.items()} == choices
        assert manifest.job.not_backed_up, "the org's objects that scope left out are listed"
        assert all(o.name not in manifest.objects for o in manifest.job.not_backed_up)

    # sfvault job show names each object's path and reason, and the objects scope left out
    shown = _job_show(env, full.job_id, tmp_path / "sfvault.toml")
    task_rows = full.objects["Task"].extraction.rows  # type: ignore[union-attr]
    assert f"read through bulk1 (pk_chunking, {task_rows:,} rows): Task" in shown
    assert "read through rest (bulk_unsupported): Attachment" in shown
    assert "object(s) of the org not backed up:" in shown

    env.churn(3, 11)
    inc = env.backup("auto", options=AUTO)
    assert inc.state == "succeeded", inc.error_message
    assert inc.kind == "incremental"
    assert {r.extraction.reason for r in inc.objects.values() if r.extraction} <= {
        "small",
        "incremental_window",
        "bulk_unsupported",
    }
    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "auto", objects).items() if v} == {}
