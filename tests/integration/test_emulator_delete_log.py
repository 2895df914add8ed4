"""The emulator's delete log, ``GET /sobjects/{O}/deleted/?start=&end=``, as Salesforce answers it.

Through simple-salesforce's ``sf.<Object>.deleted(start, end)`` (its public API, unchanged) and
raw HTTP for the error cases: the JSON shape with ``+0000`` timestamps, start/end truncated to
the minute, 15 days of retention, ``earliestDateAvailable`` moved forward by a physical deletion
(recycle bin emptied, hard delete) so that a window starting before it is refused with
INVALID_REPLICATION_DATE, and non-replicateable objects refused. A private org: the test deletes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from simple_salesforce import Salesforce

from tests.helpers.emulator_proc import EmulatorProcess, simple_salesforce, start_emulator

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"


@pytest.fixture(scope="module")
def em() -> Iterator[EmulatorProcess]:
    e = start_emulator(scale=1_000, seed=5, tls=True, timeout=300)
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture()
def sf(em: EmulatorProcess) -> Salesforce:
    return simple_salesforce(em)


def _now(em: EmulatorProcess) -> datetime:
    return datetime.fromisoformat(em.admin("GET", "/clock")["now"]).astimezone(UTC)


def _parse(text: str) -> datetime:
    assert text.endswith("+0000") and len(text) == 28, text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def _get(em: EmulatorProcess, obj: str, start: datetime, end: datetime) -> httpx.Response:
    with httpx.Client(base_url=em.url, verify=em.verify, trust_env=False, timeout=60) as http:
        return http.get(
            f"{V}/sobjects/{obj}/deleted/",
            params={"start": start.isoformat(), "end": end.isoformat()},
            headers={"Authorization": f"Bearer {em.token()}"},
        )


def _err(resp: httpx.Response) -> tuple[int, str]:
    body: Any = resp.json()
    return resp.status_code, body[0]["errorCode"]


def _new_lead(sf: Salesforce, name: str) -> str:
    return str(
        sf.Lead.create({"LastName": name, "Company": "Del Co", "Status": "Open - Not Contacted"})["id"]
    )


def test_deletions_are_listed_with_salesforce_shapes_through_simple_salesforce(
    em: EmulatorProcess, sf: Salesforce
) -> None:
    start = _now(em)
    rid = _new_lead(sf, "Gone")
    sf.Lead.delete(rid)
    deleted_at = _now(em)
    kept = _new_lead(sf, "Kept")
    em.admin("POST", "/clock", json={"advance": 90})
    end = _now(em) + timedelta(minutes=1)
    asked = _now(em).replace(second=0, microsecond=0)
    body = sf.Lead.deleted(start, end)
    assert set(body) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    listed = {r["id"]: _parse(r["deletedDate"]) for r in body["deletedRecords"]}
    assert rid in listed and kept not in listed
    assert abs(listed[rid] - deleted_at) < timedelta(seconds=5)
    # no physical deletion of Leads yet: the log reaches back 15 days (whole minutes)
    earliest = _parse(body["earliestDateAvailable"])
    assert earliest.second == 0 and timedelta(days=15) - timedelta(minutes=2) < _now(em) - earliest
    # ``end`` beyond now: covered up to the current minute, where the next window starts
    covered = _parse(body["latestDateCovered"])
    assert asked <= covered <= _now(em) and covered.second == 0


def test_start_and_end_are_truncated_to_the_minute(em: EmulatorProcess, sf: Salesforce) -> None:
    rid = _new_lead(sf, "Truncated")
    sf.Lead.delete(rid)
    at = _now(em)
    em.admin("POST", "/clock", json={"advance": 120})
    # a start later in the same minute as the deletion still lists it: its seconds are dropped
    start = at.replace(second=59, microsecond=0)
    body = _get(em, "Lead", start, _now(em)).json()
    assert rid in [r["id"] for r in body["deletedRecords"]]
    # an end inside the deletion's minute is that minute's start: not listed
    body = _get(em, "Lead", at - timedelta(minutes=3), at.replace(second=59)).json()
    assert rid not in [r["id"] for r in body["deletedRecords"]]


def test_invalid_windows_are_refused(em: EmulatorProcess) -> None:
    now = _now(em)
    assert _err(_get(em, "Lead", now, now - timedelta(minutes=5))) == (400, "INVALID_REPLICATION_DATE")
    same_minute = now.replace(second=1)
    assert _err(_get(em, "Lead", same_minute, same_minute.replace(second=50))) == (
        400, "INVALID_REPLICATION_DATE",
    )  # fmt: skip
    too_old = _get(em, "Lead", now - timedelta(days=15, minutes=2), now)
    assert _err(too_old) == (400, "INVALID_REPLICATION_DATE")
    assert _get(em, "Lead", now - timedelta(days=14), now).status_code == 200
    # UserLicense is not replicateable (describe says so), and the resource refuses it
    with httpx.Client(base_url=em.url, verify=em.verify, trust_env=False, timeout=60) as http:
        desc = http.get(
            f"{V}/sobjects/UserLicense/describe", headers={"Authorization": f"Bearer {em.token()}"}
        )
    assert desc.json()["replicateable"] is False
    assert _err(_get(em, "UserLicense", now - timedelta(days=1), now)) == (400, "INVALID_TYPE")


def test_a_physical_deletion_moves_earliest_date_available_forward(
    em: EmulatorProcess, sf: Salesforce
) -> None:
    before = _now(em) - timedelta(minutes=10)
    rid = _new_lead(sf, "Purged")
    em.admin("POST", "/clock", json={"advance": 30})
    sf.Lead.delete(rid)
    deleted_at = _now(em)
    em.admin("POST", "/clock", json={"advance": 150})
    assert _get(em, "Lead", before, _now(em)).status_code == 200
    # emptying the recycle bin physically deletes the record: the log now starts at its deletion
    assert em.admin("POST", "/recycle-bin/empty", json={})["purged"] >= 1
    refused = _get(em, "Lead", before, _now(em))
    assert _err(refused) == (400, "INVALID_REPLICATION_DATE")
    after = deleted_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    body = _get(em, "Lead", after, _now(em) + timedelta(minutes=1)).json()
    assert _parse(body["earliestDateAvailable"]) <= after
    assert abs(_parse(body["earliestDateAvailable"]) - deleted_at) < timedelta(seconds=5)
    # other objects keep their own log
    assert _get(em, "Contact", before, _now(em)).status_code == 200


def test_churn_hard_deletes_are_logged_and_move_the_log_forward(em: EmulatorProcess, sf: Salesforce) -> None:
    before = _now(em).replace(second=0, microsecond=0) - timedelta(minutes=1)
    summary = em.admin("POST", "/churn", json={"percent": 10, "seed": 3})
    hard = {o for o, n in summary["purged"].items() if n}
    assert hard, summary
    em.admin("POST", "/clock", json={"advance": 120})
    refused = set()
    for obj in hard:
        resp = _get(em, obj, before, _now(em))
        if resp.status_code == 200:  # only records soft-deleted before ``before`` were purged
            assert _parse(resp.json()["earliestDateAvailable"]) <= before, obj
        else:
            assert _err(resp) == (400, "INVALID_REPLICATION_DATE"), obj
            refused.add(obj)
    assert {"Contact", "Task"} <= refused, refused  # churn hard-deletes live rows of both (k // 10 > 0)
    soft_only = [o for o, n in summary["deleted"].items() if n and o not in hard]
    for obj in soft_only:
        body = _get(em, obj, before, _now(em) + timedelta(minutes=1)).json()
        assert len(body["deletedRecords"]) >= summary["deleted"][obj] - summary["undeleted"].get(obj, 0)


def test_churn_without_purges_deletes_nothing_physically_and_the_log_covers_its_window(
    em: EmulatorProcess,
) -> None:
    """The benchmark's no-purge churn (issue 14): updates, inserts and soft deletes only, the
    recycle bin kept, so every object's delete log still serves a window opened before it."""
    em.admin("POST", "/clock", json={"advance": 120})
    before = _now(em).replace(second=0, microsecond=0) - timedelta(minutes=1)
    summary = em.admin("POST", "/churn", json={"percent": 10, "seed": 4, "purges": False})
    assert not any(summary["purged"].values()), summary
    deleted = {o: n for o, n in summary["deleted"].items() if n}
    assert {"Contact", "Task"} <= set(deleted), summary
    em.admin("POST", "/clock", json={"advance": 120})
    for obj, n in deleted.items():
        resp = _get(em, obj, before, _now(em) + timedelta(minutes=1))
        assert resp.status_code == 200, (obj, resp.text)
        assert len(resp.json()["deletedRecords"]) >= n, obj
    with pytest.raises(httpx.HTTPStatusError) as bad:
        em.admin("POST", "/churn", json={"percent": 1, "purges": "no"})
    assert bad.value.response.status_code == 400
