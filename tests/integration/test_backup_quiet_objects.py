"""An incremental without an Id sweep spends no task on objects whose window holds no change.

A few records change through the REST API (an update, a soft delete: no hard delete, so no sweep
is needed for the snapshot to equal the org); every other object is left alone. The incremental
extracts only the changed objects (a delete-only window included), keeps the cursors of the quiet
ones, and the newest snapshot still equals the emulator's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.config import load_settings
from engine.extract.client import SalesforceClient
from engine.extract.rest import RestApi
from engine.jobs.credentials import client_options, credentials_record, grant_from_record
from engine.jobs.planning import BackupRequest
from engine.jobs.runner import run_backup

pytestmark = pytest.mark.emulator

NO_SWEEP = replace(TEST_OPTIONS, id_sweep_every=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-quiet"), scale=5_000) as e:
        e.add_org("acme")
        yield e


def _client(env: BackupEnv) -> SalesforceClient:
    i = env.em.info
    rec = credentials_record(
        instance_url=i["instance_url"], username=i["username"], password=i["password"],
        security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
        login_url=i["login_url"], ca_file=i.get("ca_file"),
    )  # fmt: skip
    return SalesforceClient.connect(grant_from_record(rec), client_options(rec, env.settings))


def test_quiet_objects_are_skipped_and_the_snapshot_stays_exact(env: BackupEnv) -> None:
    full = env.backup("acme", options=NO_SWEEP)
    assert full.state == "succeeded", full.error_message
    objects = sorted(full.objects)

    with _client(env) as c:
        rest = RestApi(c)
        account = next(rest.query_records("SELECT Id FROM Account LIMIT 1"))["Id"]
        contact = next(rest.query_records("SELECT Id FROM Contact LIMIT 1"))["Id"]
        c.request("PATCH", f"sobjects/Account/{account}", json={"Description": "changed by the test"})
        c.request("DELETE", f"sobjects/Contact/{contact}")

    inc = env.backup("acme", options=NO_SWEEP)
    assert inc.state == "succeeded", inc.error_message
    assert inc.kind == "incremental"
    assert inc.objects["Account"].records == 1 and inc.objects["Account"].partitions == 1
    assert inc.objects["Contact"].deleted == 1 and inc.objects["Contact"].partitions == 1
    quiet = [n for n, o in inc.objects.items() if o.mode == "incremental" and o.partitions == 0]
    assert "Opportunity" in quiet and all(inc.objects[n].state == "succeeded" for n in quiet)

    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "acme", objects).items() if v} == {}
        manifests = sorted(repo.manifests("acme"), key=lambda m: m.created_at)
    first, last = manifests[0], manifests[-1]
    assert last.objects["Opportunity"].mode == "incremental"
    # the cursor stays; only where the next delete-log window starts moves on (decision 0010)
    kept, was = last.objects["Opportunity"].cursor, first.objects["Opportunity"].cursor
    assert kept is not None and was is not None
    assert kept.deletes_through is not None and was.deletes_through is not None
    assert kept.deletes_through >= was.deletes_through
    assert replace(kept, deletes_through=None) == replace(was, deletes_through=None)

    # and the next job still finds changes made after the skip
    with _client(env) as c:
        opp = next(RestApi(c).query_records("SELECT Id FROM Opportunity LIMIT 1"))["Id"]
        c.request("PATCH", f"sobjects/Opportunity/{opp}", json={"Description": "changed later"})
    again = env.backup("acme", options=NO_SWEEP)
    assert again.state == "succeeded", again.error_message
    assert again.objects["Opportunity"].records == 1
    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "acme", objects).items() if v} == {}


def test_a_job_takes_its_knobs_from_the_configuration(env: BackupEnv, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``run_backup`` without explicit options reads ``[sfvault.job]`` and ``SFVAULT_JOB__*``: here
    file bodies off from the file and the sweep cadence from the environment."""
    s = env.settings
    cfg = tmp_path / "sfvault.toml"
    cfg.write_text(
        "[sfvault]\n"
        f'repository_url = "{s.repository_url}"\nkey_file = "{s.key_file}"\ncatalog_url = "{s.catalog_url}"\n'
        "[sfvault.job]\nfile_bodies = false\npoll_first = 0.02\npoll_max = 0.2\nid_sweep_every = 1\n"
    )
    monkeypatch.setenv("SFVAULT_JOB__ID_SWEEP_EVERY", "0")
    settings = load_settings(cfg)
    env.add_org("configured")
    res = run_backup(settings, env.dask, "configured", BackupRequest(org="configured"))
    assert res.state == "succeeded", res.error_message
    with env.repo() as repo:
        m = next(repo.manifests("configured", newest_first=True))
    assert m.objects["ContentVersion"].rows > 0 and m.objects["Attachment"].rows > 0
    assert all(not e.blobs for e in m.objects.values())  # no body downloaded
    inc = run_backup(settings, env.dask, "configured", BackupRequest(org="configured"))
    assert inc.kind == "incremental"
    with env.repo() as repo:
        newest = next(repo.manifests("configured", newest_first=True))
    # SFVAULT_JOB__ID_SWEEP_EVERY=0 won over the file's 1: only the objects the delete log cannot
    # serve (not replicateable) are swept (decision 0010), not every object
    swept = {o for o, e in newest.objects.items() if e.swept}
    assert swept == {o for o, e in newest.objects.items() if e.sweep_reason} and "Account" not in swept
