"""The emulator's delete log, ``GET /sobjects/{O}/deleted/?start=&end=``, as Salesforce answers it.

Through simple-salesforce's ``sf.<Object>.deleted(start, end)`` (its public API, unchanged) and
raw HTTP for the error cases: the JSON shape with ``+0000`` timestamps, start/end truncated to
the minute, 15 days of retention, ``earliestDateAvailable`` moved forward by a physical deletion
(recycle bin emptied, hard delete) so that a window starting before it is refused with
INVALID_REPLICATION_DATE, and non-replicateable objects refused. The same resources (and
``updated``) as subrequests of ``POST /composite``, answering what the plain routes answer, and
the engine's :func:`~engine.extract.replication.get_deleted_many` equal to ``get_deleted`` per
object (decision 0041). A private org: the test deletes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from simple_salesforce import Salesforce

from engine.errors import (
    ReplicationNotSupported,
    ReplicationWindowNotCovered,
    SfvaultError,
)
from engine.extract import replication
from engine.extract.auth import SessionIdGrant
from engine.extract.client import ClientOptions, SalesforceClient
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


def _get(
    em: EmulatorProcess, obj: str, start: datetime, end: datetime, resource: str = "deleted/"
) -> httpx.Response:
    with httpx.Client(base_url=em.url, verify=em.verify, trust_env=False, timeout=60) as http:
        return http.get(
            f"{V}/sobjects/{obj}/{resource}",
            params={"start": start.isoformat(), "end": end.isoformat()},
            headers={"Authorization": f"Bearer {em.token()}"},
        )


def _composite(em: EmulatorProcess, urls: list[str]) -> httpx.Response:
    subs = [{"method": "GET", "url": url, "referenceId": f"r{i}"} for i, url in enumerate(urls)]
    with httpx.Client(base_url=em.url, verify=em.verify, trust_env=False, timeout=60) as http:
        return http.post(
            f"{V}/composite", json={"allOrNone": False, "compositeRequest": subs},
            headers={"Authorization": f"Bearer {em.token()}"},
        )  # fmt: skip


def _sub_url(obj: str, start: datetime, end: datetime, resource: str = "deleted/") -> str:
    return f"{V}/sobjects/{obj}/{resource}?{urlencode({'start': start.isoformat(), 'end': end.isoformat()})}"


def _api_used(em: EmulatorProcess) -> int:
    return int(em.admin("GET", "/limits")["used"]["DailyApiRequests"])


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


def test_composite_replication_subrequests_answer_as_the_plain_routes(
    em: EmulatorProcess, sf: Salesforce
) -> None:
    """``deleted`` and ``updated`` as composite subrequests: the plain route's status and body for
    the same window, refusals included (one rule in :mod:`emulator.rest`, not two)."""
    em.admin("POST", "/clock", json={"advance": 120})  # after the purges of the tests before
    start = _now(em).replace(second=0, microsecond=0)
    rid = _new_lead(sf, "Composite")
    changed = _new_lead(sf, "Changed")
    sf.Lead.delete(rid)
    em.admin("POST", "/clock", json={"advance": 120})
    now = datetime.fromisoformat(em.admin("POST", "/clock", json={"freeze": True})["now"]).astimezone(UTC)
    try:
        hour, day = start, now - timedelta(days=1)
        cases = [  # (object, resource, start, end)
            ("Lead", "deleted/", hour, now + timedelta(minutes=1)),
            ("Lead", "deleted", hour, now),
            ("Lead", "updated/", hour, now + timedelta(minutes=1)),
            ("Contact", "updated", day, now),
            ("Lead", "deleted/", now - timedelta(days=15, minutes=2), now),  # older than the log
            ("Lead", "deleted/", now, now - timedelta(minutes=5)),  # start after end
            ("UserLicense", "deleted/", day, now),  # not replicateable
            ("UserLicense", "updated/", day, now),
            ("NoSuchObject__c", "deleted/", day, now),
        ]
        plain = [_get(em, obj, lo, hi, res) for obj, res, lo, hi in cases]
        resp = _composite(em, [_sub_url(obj, lo, hi, res) for obj, res, lo, hi in cases])
        assert resp.status_code == 200, resp.text
        subs = {a["referenceId"]: a for a in resp.json()["compositeResponse"]}
        for i, (case, want) in enumerate(zip(cases, plain, strict=True)):
            got = subs[f"r{i}"]
            assert (got["httpStatusCode"], got["body"]) == (want.status_code, want.json()), case
        codes = [(p.status_code, p.json()[0]["errorCode"]) for p in plain[4:]]
        assert codes == [
            (400, "INVALID_REPLICATION_DATE"), (400, "INVALID_REPLICATION_DATE"), (400, "INVALID_TYPE"),
            (400, "INVALID_TYPE"), (404, "NOT_FOUND"),
        ]  # fmt: skip
        assert rid in [r["id"] for r in plain[0].json()["deletedRecords"]]
        assert changed in plain[2].json()["ids"]
    finally:
        em.admin("POST", "/clock", json={"unfreeze": True})


def test_twenty_five_replication_subrequests_are_one_api_call(em: EmulatorProcess) -> None:
    """Up to 25 subrequests; delete-log and updated ones are not queries (Salesforce's limit of 5
    counts queries only); the request counts once against the org's API allowance, and the
    request log lists its subrequests."""
    em.admin("POST", "/clock", json={"advance": 180})  # after the purges of the tests before
    now = _now(em)
    objects = ["Lead", "Contact", "Account", "Opportunity", "Case"]
    urls = [
        _sub_url(objects[i % 5], now - timedelta(minutes=2), now, "deleted/" if i % 2 else "updated/")
        for i in range(25)
    ]
    seq = int(em.admin("GET", "/requests", params={"limit": 1})["last_seq"])
    before = _api_used(em)
    resp = _composite(em, urls)
    assert resp.status_code == 200, resp.text
    assert [a["httpStatusCode"] for a in resp.json()["compositeResponse"]] == [200] * 25
    assert _api_used(em) == before + 1
    log = em.admin("GET", "/requests", params={"since": seq})["requests"]
    logged = [r for r in log if r["path"].startswith("/services/data/")]  # not the token request
    assert [r["path"] for r in logged] == [f"{V}/composite"]
    assert logged[0]["subrequests"] == [u.split("?")[0] for u in urls]
    too_many = _composite(em, [*urls, urls[0]])
    assert _err(too_many) == (400, "LIMIT_EXCEEDED")


def test_a_fault_armed_for_subrequests_meets_one_objects_subrequest(em: EmulatorProcess) -> None:
    em.admin("POST", "/clock", json={"advance": 180})  # after the purges of the tests before
    now = _now(em)
    urls = [_sub_url(o, now - timedelta(minutes=2), now) for o in ("Lead", "Contact")]
    fault = {"path_regex": r"/sobjects/Lead/deleted/?$", "status": 400, "error_code": "EXCEEDED_ID_LIMIT"}
    plain_only = em.admin("POST", "/faults", json=fault)
    armed = em.admin("POST", "/faults", json={**fault, "subrequests": True})
    try:
        answers = _composite(em, urls).json()["compositeResponse"]
        assert [a["httpStatusCode"] for a in answers] == [400, 200]
        assert answers[0]["body"][0]["errorCode"] == "EXCEEDED_ID_LIMIT"
        faults = {f["id"]: f for f in em.admin("GET", "/faults")["faults"]}
        assert (faults[plain_only["id"]]["fired"], faults[armed["id"]]["fired"]) == (0, 1)
    finally:
        em.admin("DELETE", "/faults")


def _client(em: EmulatorProcess) -> SalesforceClient:
    grant = SessionIdGrant(instance_url=em.url, session_id=SecretStr(em.token()))
    options = ClientOptions(
        retry_wait_max=0, retry_max_attempts=3, ca_file=em.info["ca_file"], trust_env=False
    )
    return SalesforceClient(grant, options)


def _outcome(got: replication.DeletedRecords | SfvaultError) -> Any:
    return (type(got).__name__, got.code, got.details) if isinstance(got, SfvaultError) else got


def test_get_deleted_many_equals_get_deleted_per_object(em: EmulatorProcess, sf: Salesforce) -> None:
    """The engine's composite ask (decision 0041) answers, object by object, what one call each
    answers: deletions listed, a window the log no longer covers refused, an object that is not
    replicateable refused; in one API call."""
    em.admin("POST", "/clock", json={"advance": 120})  # after the purges of the tests before
    start = _now(em).replace(second=0, microsecond=0)
    gone = [_new_lead(sf, f"Many {i}") for i in range(3)]
    for rid in gone:
        sf.Lead.delete(rid)
    acct = sf.Account.create({"Name": "Many Co"})["id"]
    sf.Account.delete(acct)
    em.admin("POST", "/clock", json={"advance": 120})
    now = datetime.fromisoformat(em.admin("POST", "/clock", json={"freeze": True})["now"]).astimezone(UTC)
    try:
        end = replication.window_end(now)
        hour = start
        asks = [
            ("Lead", hour, end), ("Account", hour, end), ("Contact", hour, end), ("Opportunity", hour, end),
            ("Case", now - timedelta(days=16), end),  # older than the log: refused
            ("UserLicense", hour, end),  # not replicateable
        ]  # fmt: skip
        with _client(em) as c:
            one_by_one: list[replication.DeletedRecords | SfvaultError] = []
            for name, lo, hi in asks:
                try:
                    one_by_one.append(replication.get_deleted(c, name, lo, hi))
                except SfvaultError as err:
                    one_by_one.append(err)
            spent = sum(c.usage.calls.values())
            many = replication.get_deleted_many(c, asks)
            assert sum(c.usage.calls.values()) == spent + 1
    finally:
        em.admin("POST", "/clock", json={"unfreeze": True})
    assert [_outcome(g) for g in many] == [_outcome(g) for g in one_by_one]
    lead, account = many[0], many[1]
    assert isinstance(lead, replication.DeletedRecords) and isinstance(account, replication.DeletedRecords)
    assert set(gone) <= {i for i, _ in lead.records} and acct in {i for i, _ in account.records}
    assert isinstance(many[4], ReplicationWindowNotCovered) and isinstance(many[5], ReplicationNotSupported)
