"""Incrementals keep every value exactly as the org holds it (issue 14, defects 2 and 4).

* Text values with a bare ``\\r``, a ``\\r\\n``, a control character other than NUL and 4-byte
  emoji, read through the REST path of a small incremental window: REST JSON records used to be
  written to CSV text by a writer that does not quote a lone ``\\r`` and parsed again, which failed
  the object with SFV-411.
* Two versions of one record with the same SystemModstamp millisecond (the emulator's clock is
  frozen): the boundary dedup used to drop the second because the previous job had captured the
  pair (Id, SystemModstamp); it now compares a digest of the values too. Both through one task
  per window and through the boundary task of a split partition (``boundary_check_min_rows=0``).

After each incremental the backup's state of the object equals the org as simple-salesforce's
``query_all`` reads it, value for value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from simple_salesforce import Salesforce

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env, bulk_only
from engine.extract.cursor import Cursor
from engine.jobs.runner import BackupResult
from engine.jobs.state import object_state
from engine.jobs.tasks import BLOB_SUFFIX
from tests.helpers.emulator_proc import salesforce_session

pytestmark = pytest.mark.emulator

SPLIT = replace(TEST_OPTIONS, boundary_check_min_rows=0)
ODD_TEXT = {
    "Name": "Trailing CR\r",
    "Description": "a bare CR\rin the middle, a CRLF\r\nthere, a bell \x07, a unit separator \x1f, 🚀😀",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("exact-versions"), scale=3_000, seed=11) as e:
        e.add_org("acme")
        yield e


def _succeeded(result: BackupResult) -> BackupResult:
    failed = {n: (o.error_code, o.error_message) for n, o in result.objects.items() if o.state != "succeeded"}
    assert result.state == "succeeded" and not failed, (result.error_message, failed)
    return result


def _patch(env: BackupEnv, obj: str, record_id: str, values: dict[str, Any]) -> None:
    with httpx.Client(base_url=env.em.url, verify=env.em.verify, trust_env=False, timeout=60) as http:
        resp = http.patch(
            f"/services/data/v62.0/sobjects/{obj}/{record_id}",
            json=values,
            headers={"Authorization": f"Bearer {env.em.token()}"},
        )
    assert resp.status_code == 204, resp.text


def _some_ids(env: BackupEnv, obj: str, n: int) -> list[str]:
    return [
        str(r[0])
        for r in env.em.sql(f"SELECT Id FROM sf_{obj.lower()} WHERE NOT IsDeleted ORDER BY Id LIMIT {n}")
    ]


def _json_like(v: Any) -> Any:
    """A backup value as REST JSON shows it (numbers as float, empty text as null)."""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, Decimal | int | float):
        return float(v)
    return None if v == "" else v


def _mismatches_with_org(env: BackupEnv, obj: str) -> list[str]:
    """Every value of the backup's newest state of ``obj`` against simple-salesforce's reading."""
    with env.repo() as repo:
        table = object_state(repo, "acme", obj)
    assert table is not None
    fields = [c for c in table.column_names if not c.endswith(BLOB_SUFFIX)]
    i = env.em.info
    session = salesforce_session(i)
    # the org's instance is served over plain HTTP here: route simple-salesforce's https:// to it
    session.mount(
        f"https://{urlsplit(env.em.url).netloc}", session.get_adapter("https://login.salesforce.com")
    )
    sf = Salesforce(
        username=i["username"], password=i["password"], security_token=i["security_token"], session=session
    )
    org = {r["Id"]: r for r in sf.query_all(f"SELECT {', '.join(fields)} FROM {obj}")["records"]}
    backup = {r["Id"]: r for r in table.select(fields).to_pylist()}
    out: list[str] = []
    if set(org) != set(backup):
        out.append(f"Ids: {len(set(org) - set(backup))} missing, {len(set(backup) - set(org))} extra")
    for rid in sorted(set(org) & set(backup)):
        for f in fields:
            theirs = org[rid][f]
            theirs = (
                float(theirs) if isinstance(theirs, int | float) and not isinstance(theirs, bool) else theirs
            )
            if (None if theirs == "" else theirs) != _json_like(backup[rid][f]):
                out.append(f"{rid}.{f}: org {theirs!r}, backup {backup[rid][f]!r}")
    return out


def test_text_with_carriage_returns_and_emoji_through_the_rest_path(env: BackupEnv) -> None:
    _succeeded(env.backup("acme"))
    ids = _some_ids(env, "Account", 3)
    for rid in ids:
        _patch(env, "Account", rid, ODD_TEXT)
    inc = _succeeded(env.backup("acme"))
    assert inc.kind == "incremental"
    account = inc.objects["Account"]
    assert account.mode == "incremental" and account.bulk_jobs == 0  # the window went through REST
    assert _mismatches_with_org(env, "Account") == []
    with env.repo() as repo:
        table = object_state(repo, "acme", "Account")
    assert table is not None
    names = dict(zip(table.column("Id").to_pylist(), table.column("Name").to_pylist(), strict=True))
    assert [names[r] for r in ids] == [ODD_TEXT["Name"]] * 3


def _frozen(env: BackupEnv) -> datetime:
    return datetime.fromisoformat(env.em.admin("POST", "/clock", json={"freeze": True})["now"])


@pytest.mark.parametrize("options", [TEST_OPTIONS, SPLIT], ids=["one-task", "boundary-task"])
def test_a_second_version_in_the_same_millisecond_is_captured(env: BackupEnv, options: Any) -> None:
    _succeeded(env.backup("acme", options=options))
    rid = _some_ids(env, "Account", 1)[0]
    _frozen(env)
    try:
        _patch(env, "Account", rid, {"Description": "version 1"})
        stamp = _stamp(env, rid)
        first = _succeeded(env.backup("acme", options=options))
        assert first.objects["Account"].records >= 1
        _patch(env, "Account", rid, {"Description": "version 2, same millisecond"})
        assert _stamp(env, rid) == stamp
        second = _succeeded(env.backup("acme", options=options))
        if options is SPLIT:  # the window's task and the boundary's
            assert second.objects["Account"].partitions >= 2
    finally:
        env.em.admin("POST", "/clock", json={"unfreeze": True})
    with env.repo() as repo:
        table = object_state(repo, "acme", "Account")
    assert table is not None
    row = next(r for r in table.to_pylist() if r["Id"] == rid)
    assert row["Description"] == "version 2, same millisecond"
    assert _mismatches_with_org(env, "Account") == []


def _stamp(env: BackupEnv, rid: str) -> str:
    rows = env.em.sql(f"SELECT CAST(SystemModstamp AS VARCHAR) FROM sf_account WHERE Id = '{rid}'")
    return str(rows[0][0])


def _newest_cursor(env: BackupEnv, obj: str) -> Cursor:
    with env.repo() as repo:
        newest = max(repo.manifests("acme"), key=lambda m: m.job_id)
    cursor = newest.objects[obj].cursor
    assert cursor is not None
    return cursor


def test_a_boundary_read_lag_after_its_timestamps_is_checked_by_id(env: BackupEnv) -> None:
    """Boundary rows that a Bulk job read at least ``lag`` after their timestamp (by Salesforce's
    clock: the job's createdDate) are settled; the next boundary task checks them by Id and
    timestamp only, and still captures a row committed late inside the boundary."""
    bulk = bulk_only(TEST_OPTIONS)  # one task per window, read through Bulk
    options = bulk_only(SPLIT)
    _succeeded(env.backup("acme", options=bulk))
    ids = _some_ids(env, "Account", 3)
    at = _frozen(env)
    try:
        for rid in ids:
            _patch(env, "Account", rid, {"Description": "mass update"})
        env.em.admin("POST", "/clock", json={"advance": 2 * options.cursor_lag.total_seconds()})
        _succeeded(env.backup("acme", options=bulk))
        cursor = _newest_cursor(env, "Account")
        assert cursor.last == at and cursor.settled
        env.em.admin("POST", "/clock", json={"set": at.isoformat()})
        late = _create(env, "Account", {"Name": "Committed late"})  # inside the settled boundary
        env.em.admin("POST", "/clock", json={"advance": 3 * options.cursor_lag.total_seconds()})
        second = _succeeded(env.backup("acme", options=options))
    finally:
        env.em.admin("POST", "/clock", json={"unfreeze": True})
    assert second.objects["Account"].partitions >= 2
    with env.repo() as repo:
        table = object_state(repo, "acme", "Account")
    assert table is not None and late in set(table.column("Id").to_pylist())
    assert _mismatches_with_org(env, "Account") == []


def _create(env: BackupEnv, obj: str, values: dict[str, Any]) -> str:
    with httpx.Client(base_url=env.em.url, verify=env.em.verify, trust_env=False, timeout=60) as http:
        resp = http.post(
            f"/services/data/v62.0/sobjects/{obj}",
            json=values,
            headers={"Authorization": f"Bearer {env.em.token()}"},
        )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])
