"""Retry classification and accounting of the Salesforce client.

These use ``httpx.MockTransport`` only to script status codes for the pure classification
and retry logic; the real behaviour is checked against the emulator in
``tests/integration/test_extract_emulator.py``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from engine.clock import FrozenClock
from engine.config import Settings
from engine.errors import (
    SalesforceApiLimit,
    SalesforceAuthError,
    SalesforceNotFound,
    SalesforceQueryError,
    SalesforceQueryTimeout,
    SalesforceRequestLimitExceeded,
    SalesforceTransient,
)
from engine.extract.auth import JwtBearerGrant, PasswordGrant, SessionIdGrant
from engine.extract.client import ClientOptions, SalesforceClient
from engine.extract.usage import ApiUsage, parse_limit_info

INSTANCE = "http://sf.test"
GRANT = PasswordGrant(
    login_url="http://login.test", client_id="cid", client_secret=SecretStr("csecret-XYZ"),
    username="u@x", password=SecretStr("pw-XYZ"), security_token=SecretStr("tok-XYZ"),
)  # fmt: skip
OPTS = ClientOptions(retry_wait_max=0, retry_max_attempts=4)
Handler = Callable[[httpx.Request], httpx.Response]


def sf_error(status: int, code: str, msg: str = "m") -> httpx.Response:
    return httpx.Response(
        status, json=[{"errorCode": code, "message": msg}], headers={"Sforce-Limit-Info": "api-usage=10/100"}
    )


class Script:
    """Answers token requests with a fresh token and data requests from a list of responses."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.tokens = 0
        self.data_calls = 0
        self.auth_seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            self.tokens += 1
            form = parse_qs(request.content.decode())
            assert form["password"] == ["pw-XYZtok-XYZ"]
            body = {"access_token": f"00D!t{self.tokens}", "instance_url": INSTANCE,
                    "id": "http://login.test/id/00Dx/005y", "issued_at": "1700000000000"}  # fmt: skip
            return httpx.Response(200, json=body)
        self.data_calls += 1
        self.auth_seen.append(request.headers["Authorization"])
        r = self.responses.pop(0)
        if isinstance(r, Exception):
            raise r
        return r


def client(script: Script, **opts: object) -> SalesforceClient:
    o = OPTS.model_copy(update=opts) if opts else OPTS
    return SalesforceClient(
        GRANT, o, clock=FrozenClock(), sleep=lambda s: None, transport=httpx.MockTransport(script)
    )


def test_transient_errors_are_retried_and_counted() -> None:
    ok = httpx.Response(200, json={"ok": 1}, headers={"Sforce-Limit-Info": "api-usage=42/1000"})
    s = Script(sf_error(503, "SERVER_UNAVAILABLE"), httpx.Response(500), httpx.ConnectError("reset"), ok)
    c = client(s)
    assert c.get_json("limits") == {"ok": 1}
    assert s.data_calls == 4 and c.usage.calls["rest"] == 4 and c.usage.calls["login"] == 1
    assert (c.usage.org_used, c.usage.org_max) == (42, 1000)


def test_retries_are_bounded() -> None:
    s = Script(*[sf_error(503, "SERVER_UNAVAILABLE")] * 4)
    with pytest.raises(SalesforceTransient):
        client(s).get_json("limits")
    assert s.data_calls == 4


@pytest.mark.parametrize(
    ("resp", "exc"),
    [
        (sf_error(400, "MALFORMED_QUERY"), SalesforceQueryError),
        (sf_error(400, "INVALID_FIELD", "No such column 'Foo'"), SalesforceQueryError),
        (sf_error(400, "INVALID_TYPE"), SalesforceQueryError),
        (sf_error(404, "NOT_FOUND"), SalesforceNotFound),
        (
            sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            SalesforceRequestLimitExceeded,
        ),
        (
            sf_error(400, "LIMIT_EXCEEDED", "Max number of Bulk API 2.0 query jobs"),
            SalesforceRequestLimitExceeded,
        ),
        (sf_error(400, "QUERY_TIMEOUT"), SalesforceQueryTimeout),
        # the message text never decides: a timeout-sounding message with another code is a query error
        (
            sf_error(400, "MALFORMED_QUERY", "QUERY_TIMEOUT: request was running for too long"),
            SalesforceQueryError,
        ),
    ],
)
def test_permanent_errors_are_not_retried(resp: httpx.Response, exc: type[Exception]) -> None:
    s = Script(resp, httpx.Response(200, json={}))
    with pytest.raises(exc) as info:
        client(s).get_json("query", params={"q": "SELECT Id FROM Account"})
    assert s.data_calls == 1
    assert type(info.value) is exc


def test_request_limit_is_an_api_limit() -> None:
    assert issubclass(SalesforceRequestLimitExceeded, SalesforceApiLimit)


def test_invalid_session_refreshes_once() -> None:
    s = Script(sf_error(401, "INVALID_SESSION_ID"), httpx.Response(200, json={"a": 1}))
    c = client(s)
    assert c.get_json("sobjects") == {"a": 1}
    assert s.tokens == 2 and s.auth_seen == ["Bearer 00D!t1", "Bearer 00D!t2"]
    assert c.session.generation == 2


def test_second_invalid_session_is_permanent() -> None:
    s = Script(sf_error(401, "INVALID_SESSION_ID"), sf_error(401, "INVALID_SESSION_ID"), httpx.Response(200))
    with pytest.raises(SalesforceAuthError):
        client(s).get_json("sobjects")
    assert s.data_calls == 2 and s.tokens == 2


def test_bare_session_id_cannot_refresh() -> None:
    s = Script(sf_error(401, "INVALID_SESSION_ID"))
    c = SalesforceClient(SessionIdGrant(instance_url=INSTANCE, session_id=SecretStr("00D!sid")), OPTS,
                         transport=httpx.MockTransport(s), sleep=lambda x: None)  # fmt: skip
    with pytest.raises(SalesforceAuthError):
        c.get_json("sobjects")


def test_oauth_refusal_is_an_auth_error_without_secrets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "authentication failure"}
        )

    c = SalesforceClient(GRANT, OPTS, transport=httpx.MockTransport(handler), sleep=lambda x: None)
    with pytest.raises(SalesforceAuthError) as info:
        c.get_json("sobjects")
    text = str(info.value) + repr(info.value.details) + repr(GRANT) + repr(c) + repr(c.session)
    assert "invalid_grant" in str(info.value)
    for secret in ("XYZ", "pw-", "csecret"):
        assert secret not in text


def test_token_is_never_sent_to_another_host() -> None:
    c = client(Script())
    with pytest.raises(ValueError):
        c.url("https://evil.test/services/data/v62.0/query")
    assert c.url("/services/data/v62.0/query/01g-2000") == INSTANCE + "/services/data/v62.0/query/01g-2000"
    assert c.url("limits") == INSTANCE + "/services/data/v62.0/limits"


def test_reserve_check() -> None:
    limits = {
        "DailyApiRequests": {"Max": 1000, "Remaining": 950},
        "DailyBulkV2QueryJobs": {"Max": 100, "Remaining": 12},
    }
    s = Script(httpx.Response(200, json=limits), httpx.Response(200, json=limits))
    c = client(s, api_reserve=900, bulk_jobs_reserve=10)
    c.check_reserve()  # 950 >= 900
    with pytest.raises(SalesforceApiLimit):
        c.check_reserve(bulk_jobs=5)  # 12 - 5 < 10
    c.usage.observe_header("api-usage=200/1000")
    with pytest.raises(SalesforceApiLimit) as info:
        c.check_reserve()
    assert info.value.details["remaining"] == 800


def test_limit_info_parsing() -> None:
    assert parse_limit_info("api-usage=18/5000") == (18, 5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)") == (25, 5000)
    assert parse_limit_info("per-app-api-usage=17/250(appName=x)") is None
    assert parse_limit_info(None) is None


def test_usage_pickles_and_merges() -> None:
    u = ApiUsage()
    u.count("rest", 3)
    u.count("bulk2_results_page")
    u.count("login")
    u.observe_header("api-usage=5/10")
    back = pickle.loads(pickle.dumps(u))
    assert back.snapshot() == u.snapshot() and back.api_calls == 4
    total = ApiUsage()
    total.merge(back)
    total.merge(u)
    assert total.calls == {"rest": 6, "bulk2_results_page": 2, "login": 2}
    assert total.remaining == 5


def test_options_from_settings() -> None:
    o = ClientOptions.from_settings(Settings(retry_wait_max=0, retry_max_seconds=5))
    assert o.retry_wait_max == 0 and o.retry_max_seconds == 5


def test_jwt_assertion_is_rs256_and_short_lived() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    grant = JwtBearerGrant(login_url="https://login.salesforce.com", client_id="cid", username="u@x",
                           private_key=SecretStr(pem))  # fmt: skip
    clock = FrozenClock()
    token = grant.assertion(clock.now())
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], audience="https://login.salesforce.com",
                        options={"verify_exp": False})  # fmt: skip
    assert claims["iss"] == "cid" and claims["sub"] == "u@x"
    assert claims["exp"] - clock.now().timestamp() <= 300
    assert "PRIVATE" not in repr(grant)


def test_bulk_reads_time_out_early_and_longer_on_each_retry() -> None:
    """A stalled status read or result page is cut after ``bulk_read_timeout_seconds`` and retried
    with twice the patience, up to the request timeout; a REST query keeps the request timeout."""
    seen: list[float] = []

    class Stalls(Script):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path != "/services/oauth2/token":
                seen.append(request.extensions["timeout"]["read"])
            return super().__call__(request)

    stall = httpx.ReadTimeout("stalled")
    ok = httpx.Response(200, json={"id": "750x", "state": "JobComplete"})
    script = Stalls(stall, stall, stall, ok, ok)
    c = client(script, retry_max_attempts=5, bulk_read_timeout_seconds=5.0, timeout_seconds=30.0)
    assert c.get_json("jobs/query/750x", "bulk2_job")["state"] == "JobComplete"
    assert seen == [5.0, 10.0, 20.0, 30.0], "doubled per retry, capped at the request timeout"
    seen.clear()
    c.get_json("query", "rest", params={"q": "SELECT Id FROM Account"})
    assert seen == [30.0], "a REST query may compute for long: no early timeout"
