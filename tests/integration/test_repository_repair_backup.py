"""Repair, then back up: one flipped bit in one manifest no longer blocks the org (issue 15, finding 2).

A private emulated org, a local encrypted repository, a SQLite catalog and a process-based
LocalCluster (``devkit.backup_env``). The org's newest manifest gets one flipped bit: the next
backup and prune fail with SFV-311 (the regression); ``sfvault repair`` lists what it would do and
changes nothing, ``sfvault repair --apply`` sets the manifest aside (kept under ``quarantine/``),
and the next backup succeeds, extracts every object in full (its newest data was set aside) and
matches the org; verify (keyed and keyless) is clean, and the job after it is incremental again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devkit.backup_env import BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.cli import app
from engine.errors import SfvaultError
from engine.sink.backend import Kind
from engine.sink.manifest import manifest_handle
from engine.sink.prune import prune
from engine.sink.verify import verify, verify_keyless
from tests.helpers import corrupt

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("repair-backup"), scale=3_000, seed=11) as e:
        e.add_org("acme")
        assert e.backup("acme").state == "succeeded"
        e.churn(2, 12)
        assert e.backup("acme").state == "succeeded"
        yield e


def _config(env: BackupEnv, tmp: Path) -> Path:
    s = env.settings
    path = tmp / "sfvault.toml"
    path.write_text(
        f'[sfvault]\nrepository_url = "{s.repository_url}"\nkey_file = "{s.key_file}"\n'
        f'catalog_url = "{s.catalog_url}"\n'
    )
    return path


def test_repair_sets_a_damaged_manifest_aside_and_the_org_backs_up_again(
    env: BackupEnv, tmp_path: Path
) -> None:
    with env.repo() as repo:
        newest = repo.snapshots("acme")[-1]
        h = manifest_handle("acme", newest.job_id)
        corrupt.flip_bit(repo.backend, h, -30, bit=2)
    with pytest.raises(SfvaultError) as blocked:
        env.backup("acme")
    assert blocked.value.code == "SFV-311"
    with env.repo() as repo, pytest.raises(SfvaultError) as err:
        prune(repo, dry_run=True)
    assert err.value.code == "SFV-311"

    config = _config(env, tmp_path)
    runner = CliRunner()
    dry = runner.invoke(app, ["repair", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert f"would set aside snapshot SFV-311 {h.path}" in dry.output
    with env.repo() as repo:
        assert newest.job_id in [s.job_id for s in repo.snapshots("acme")], "the dry run changed something"
    done = runner.invoke(app, ["repair", "--apply", "--config", str(config)])
    assert done.exit_code == 0, done.output
    with env.repo() as repo:
        assert newest.job_id not in [s.job_id for s in repo.snapshots("acme")]
        assert [o.handle.name for o in repo.backend.list(Kind.QUARANTINE)] == [h.path]

    env.churn(2, 13)
    res = env.backup("acme")
    assert res.state == "succeeded", res.error_message
    with env.repo() as repo:
        m = repo.load_manifest("acme", res.job_id)
        assert {o: e.mode for o, e in m.objects.items()} == {o: "full" for o in m.objects}
        assert {k: v for k, v in compare_org(env.em, repo, "acme", sorted(m.objects)).items() if v} == {}
        assert verify(repo, read_data=True).errors == []
        assert verify_keyless(repo.backend).errors == []
    ok = runner.invoke(app, ["verify", "--no-key", "--config", str(config)])
    assert ok.exit_code == 0, ok.output

    nxt = env.backup("acme")
    assert nxt.state == "succeeded", nxt.error_message
    with env.repo() as repo:
        modes = {e.mode for e in repo.load_manifest("acme", nxt.job_id).objects.values()}
    assert "incremental" in modes, "the redo in full went on after a job captured every object"


def test_verify_cross_checks_the_catalog_for_a_manifest_deleted_with_its_index_record(
    env: BackupEnv, tmp_path: Path
) -> None:
    """Someone with write access deletes the newest manifest and its index record: no record
    names it any more, so only the catalog's job list can tell; ``verify`` reads it."""
    from engine.sink import index

    config = _config(env, tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["verify", "--config", str(config)]).exit_code == 0
    with env.repo() as repo:
        newest = repo.snapshots("acme")[-1]
        corrupt.delete(repo.backend, manifest_handle("acme", newest.job_id))
        corrupt.delete(repo.backend, index.record_handle("acme", newest.job_id))
    res = runner.invoke(app, ["verify", "--config", str(config)])
    assert res.exit_code == 90, res.output
    path = manifest_handle("acme", newest.job_id).path
    assert f"error   SFV-314 {path}: {path} is referenced by the catalog's job list" in res.output
