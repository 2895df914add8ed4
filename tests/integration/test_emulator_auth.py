"""OAuth grants, SOAP login, identity and session expiry, with Salesforce's own error bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import httpx
import pytest

from tests.helpers.emulator_proc import EmulatorProcess

pytestmark = pytest.mark.emulator

TOKEN_RE = re.compile(r"^00D[0-9A-Za-z]{12}![0-9A-Za-z._]+$")


def _token(emulator: EmulatorProcess, **form: str) -> httpx.Response:
    return emulator.http().post("/services/oauth2/token", data=form)


def _password_form(emulator: EmulatorProcess, **over: str) -> dict[str, str]:
    i = emulator.info
    form = {
        "grant_type": "password",
        "client_id": i["client_id"],
        "client_secret": i["client_secret"],
        "username": i["username"],
        "password": i["password"] + i["security_token"],
    }
    form.update(over)
    return form


def _check_token_reply(emulator: EmulatorProcess, body: dict[str, Any]) -> None:
    assert TOKEN_RE.match(body["access_token"])
    assert body["instance_url"] == emulator.url
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
    assert re.match(rf"^{re.escape(emulator.url)}/id/00D\w{{15}}/005\w{{15}}$", body["id"])
    expected = hmac.new(
        emulator.info["client_secret"].encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(body["signature"]) == expected


def test_password_grant(emulator: EmulatorProcess) -> None:
    resp = _token(emulator, **_password_form(emulator))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json;charset=UTF-8"
    body = resp.json()
    _check_token_reply(emulator, body)
    assert "refresh_token" not in body


def test_refresh_token_grant_with_the_standing_token(emulator: EmulatorProcess) -> None:
    i = emulator.info
    resp = _token(
        emulator,
        grant_type="refresh_token",
        client_id=i["client_id"],
        client_secret=i["client_secret"],
        refresh_token=i["refresh_token"],
    )
    assert resp.status_code == 200
    _check_token_reply(emulator, resp.json())
    bad = _token(emulator, grant_type="refresh_token", client_id=i["client_id"], refresh_token="5Aep861nope")
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )


def test_client_credentials_grant_with_basic_auth(emulator: EmulatorProcess) -> None:
    i = emulator.info
    basic = base64.b64encode(f"{i['client_id']}:{i['client_secret']}".encode()).decode()
    resp = emulator.http().post(
        "/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status_code == 200
    _check_token_reply(emulator, resp.json())
    assert resp.json()["scope"] == "api"


@pytest.mark.parametrize(
    ("over", "error", "description"),
    [
        ({"password": "nope"}, "invalid_grant", "authentication failure"),
        ({"username": "someone@else.example"}, "invalid_grant", "authentication failure"),
        ({"client_id": "3MVG9nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
        ({"grant_type": "magic"}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_token_errors(emulator: EmulatorProcess, over: dict[str, str], error: str, description: str) -> None:
    resp = _token(emulator, **_password_form(emulator, **over))
    assert resp.status_code == 400
    assert resp.json() == {"error": error, "error_description": description}


def test_soap_login_shape(emulator: EmulatorProcess) -> None:
    i = emulator.info
    envelope = (
        '<?xml version="1.0" encoding="utf-8" ?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
        "<soapenv:Body><urn:login><urn:username><![CDATA[{u}]]></urn:username>"
        "<urn:password><![CDATA[{p}]]></urn:password></urn:login></soapenv:Body></soapenv:Envelope>"
    )
    body = envelope.replace("{u}", i["username"]).replace("{p}", i["password"] + i["security_token"])
    resp = emulator.http().post(
        "/services/Soap/u/57.0/", content=body, headers={"Content-Type": "text/xml", "SOAPAction": "Login"}
    )
    assert resp.status_code == 200
    text = resp.text
    assert f"<serverUrl>{emulator.url}/services/Soap/u/57.0/00D" in text
    assert re.search(r"<sessionId>00D\w{12}![\w.]+</sessionId>", text)
    assert "<organizationId>00D" in text and "<passwordExpired>false</passwordExpired>" in text

    wrong = emulator.http().post(
        "/services/Soap/u/59.0",
        content=envelope.replace("{u}", i["username"]).replace("{p}", "x"),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
    )
    assert wrong.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in wrong.text
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in wrong.text

    no_token = emulator.http().post(
        "/services/Soap/u/59.0",
        content=envelope.replace("{u}", i["username"]).replace("{p}", i["password"]),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
    )
    assert "<sf:exceptionCode>LOGIN_MUST_USE_SECURITY_TOKEN</sf:exceptionCode>" in no_token.text


def test_userinfo_and_identity(emulator: EmulatorProcess, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    info = emulator.http().get("/services/oauth2/userinfo", headers=auth).json()
    assert info["preferred_username"] == emulator.info["username"]
    assert info["organization_id"].startswith("00D") and info["user_id"].startswith("005")
    ident = emulator.http().get(info["sub"], headers=auth).json()
    assert ident["username"] == emulator.info["username"]
    assert (
        emulator.http().get("/services/oauth2/userinfo", headers={"Authorization": "Bearer x"}).status_code
        == 403
    )
    user = emulator.http().get(f"/services/data/v59.0/sobjects/User/{info['user_id']}", headers=auth).json()
    assert user["Username"] == emulator.info["username"]


def test_bad_and_expired_tokens_answer_invalid_session_id(emulator: EmulatorProcess) -> None:
    expected = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    bad = emulator.http().get("/services/data/v59.0/sobjects", headers={"Authorization": "Bearer 00Dnope!x"})
    assert (bad.status_code, bad.json()) == (401, expected)
    missing = emulator.http().get("/services/data/v59.0/limits")
    assert (missing.status_code, missing.json()) == (401, expected)

    token = emulator.token()
    auth = {"Authorization": f"Bearer {token}"}
    assert emulator.http().get("/services/data/v59.0/sobjects", headers=auth).status_code == 200
    assert emulator.admin("POST", "/sessions/expire")["expired"] >= 1
    expired = emulator.http().get("/services/data/v59.0/sobjects", headers=auth)
    assert (expired.status_code, expired.json()) == (401, expected)
    assert expired.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_session_ttl(emulator: EmulatorProcess) -> None:
    emulator.admin("POST", "/sessions", json={"ttl": 0})
    try:
        token = emulator.token()
        resp = emulator.http().get("/services/data/v59.0/", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401
    finally:
        emulator.admin("POST", "/sessions", json={"ttl": 7200})
    token = emulator.token()
    resp = emulator.http().get("/services/data/v59.0/", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


def test_admin_api_needs_the_secret(emulator: EmulatorProcess) -> None:
    resp = emulator.http().get("/__emulator/counts")
    assert resp.status_code == 401
    resp = emulator.http().get("/__emulator/counts", headers={"X-Emulator-Admin-Secret": "wrong"})
    assert resp.status_code == 401
