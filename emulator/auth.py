"""Logins and sessions: the OAuth token endpoint, SOAP partner ``login()``, identity.

Grants (SALESFORCE_API.md §1.1): ``password`` (password + security token concatenated),
``client_credentials`` (form fields or HTTP Basic), ``refresh_token`` (the integration user's
standing refresh token) and the JWT bearer flow (RS256, when the org was given a public key).
Errors are the OAuth ``{"error", "error_description"}`` bodies Salesforce sends. The SOAP login
answers the partner ``loginResponse`` with unprefixed ``sessionId``/``serverUrl`` and faults
with ``sf:exceptionCode``/``sf:exceptionMessage`` (HTTP 500), as simple-salesforce expects.

Access tokens look like Salesforce's: ``<15-char org id>!<letters, digits, '.', '_'>``. Tokens
and passwords are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from emulator.context import MAX_API_VERSION, OAuthError, random_secret

if TYPE_CHECKING:
    from emulator.context import Org

JSON_UTF8 = "application/json;charset=UTF-8"
_TOKEN_CHARS = string.ascii_letters + string.digits + "._"
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Session:
    user_id: str
    expires_at: float
    issued_at_ms: int
    grant: str


class SessionStore:
    """Live access tokens. A token older than the TTL is gone: every call answers 401."""

    def __init__(self, org15: str, ttl: float) -> None:
        self.org15 = org15
        self.ttl = ttl
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def mint(self, user_id: str, grant: str) -> tuple[str, Session]:
        token = f"{self.org15}!AQ" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(94))
        now = time.monotonic()
        session = Session(user_id, now + self.ttl, int(time.time() * 1000), grant)
        with self._lock:
            self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}
            self._sessions[token] = session
        return token, session

    def check(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= time.monotonic():
                del self._sessions[token]
                return None
            return session

    def expire_all(self) -> int:
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    def set_ttl(self, ttl: float) -> None:
        with self._lock:
            delta = ttl - self.ttl
            self.ttl = ttl
            for s in self._sessions.values():
                s.expires_at += delta

    def count(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.expires_at > now)


def bearer_token(headers: Any) -> str | None:
    """The session id from ``Authorization: Bearer|OAuth <t>`` or ``X-SFDC-Session``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return str(value.strip())
    sfdc = headers.get("x-sfdc-session")
    return str(sfdc).strip() if sfdc else None


def _oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        media_type=JSON_UTF8,
    )


def _eq(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def token_reply(org: Org, grant: str, *, scope: str | None = None) -> dict[str, Any]:
    token, session = org.sessions.mint(org.user_id, grant)
    identity = org.identity_url()
    issued = str(session.issued_at_ms)
    sig = hmac.new(
        org.config.credentials.client_secret.encode(), (identity + issued).encode(), hashlib.sha256
    )
    body: dict[str, Any] = {
        "access_token": token,
        "instance_url": org.instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": base64.b64encode(sig.digest()).decode(),
    }
    if scope:
        body["scope"] = scope
    return body


def _check_client(
    org: Org, client_id: str | None, client_secret: str | None, *, secret_required: bool
) -> None:
    creds = org.config.credentials
    if not _eq(client_id, creds.client_id):
        raise OAuthError(400, "invalid_client_id", "client identifier invalid")
    if client_secret is None:
        if secret_required:
            raise OAuthError(400, "invalid_client", "invalid client credentials")
        return
    if not _eq(client_secret, creds.client_secret):
        raise OAuthError(400, "invalid_client", "invalid client credentials")


def grant_token(org: Org, form: dict[str, str], headers: Any) -> dict[str, Any]:
    """Handle one token request; raises :class:`OAuthError` as Salesforce answers it."""
    creds = org.config.credentials
    grant = form.get("grant_type")
    if grant == "password":
        _check_client(org, form.get("client_id"), form.get("client_secret"), secret_required=True)
        password = form.get("password") or ""
        if not (
            _eq(form.get("username"), creds.username) and _eq(password, creds.password + creds.security_token)
        ):
            raise OAuthError(400, "invalid_grant", "authentication failure")
        return token_reply(org, grant)
    if grant == "refresh_token":
        _check_client(org, form.get("client_id"), form.get("client_secret"), secret_required=False)
        if not _eq(form.get("refresh_token"), creds.refresh_token):
            raise OAuthError(400, "invalid_grant", "expired access/refresh token")
        return token_reply(org, grant, scope="refresh_token api full")
    if grant == "client_credentials":
        host = (headers.get("host") or "").split(":")[0].lower()
        if host in LOGIN_HOSTS:
            raise OAuthError(400, "invalid_request", "request not supported on this domain")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization") or ""
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(400, "invalid_client", "invalid client credentials") from None
            client_id, _, client_secret = decoded.partition(":")
        _check_client(org, client_id, client_secret, secret_required=True)
        return token_reply(org, grant, scope="api")
    if grant == JWT_GRANT:
        _check_jwt(org, form.get("assertion") or "")
        return token_reply(org, grant, scope="api")
    raise OAuthError(400, "unsupported_grant_type", "grant type not supported")


def _check_jwt(org: Org, assertion: str) -> None:
    import jwt  # PyJWT; only needed for this grant

    key = org.config.jwt_public_key_pem
    if key is None:
        raise OAuthError(400, "invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["RS256"],
            audience=[f"https://{h}" for h in LOGIN_HOSTS] + [org.instance_url],
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.InvalidAudienceError:
        raise OAuthError(400, "invalid_grant", "Audience validation failed") from None
    except jwt.ExpiredSignatureError:
        raise OAuthError(400, "invalid_grant", "invalid assertion") from None
    except jwt.PyJWTError:
        raise OAuthError(400, "invalid_grant", "invalid assertion") from None
    if not _eq(str(claims.get("iss")), org.config.credentials.client_id):
        raise OAuthError(400, "invalid_client_id", "client identifier invalid")
    if not _eq(str(claims.get("sub")), org.config.credentials.username):
        raise OAuthError(400, "invalid_grant", "user hasn't approved this consumer")


# --- SOAP partner login -------------------------------------------------------------------------

_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>\
<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring><detail>\
<sf:{fault} xsi:type="sf:{fault}"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{fault}></detail></soapenv:Fault>\
</soapenv:Body></soapenv:Envelope>"""

INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."


def soap_fault(code: str, message: str, fault: str = "LoginFault", status: int = 500) -> Response:
    body = _SOAP_FAULT.format(code=code, message=escape(message), fault=fault)
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].split(":")[-1]


def parse_soap_login(body: bytes) -> tuple[str | None, str | None]:
    """``(username, password)`` from a partner ``login`` envelope (any prefixes, CDATA ok)."""
    root = ElementTree.fromstring(body)
    username = password = None
    for el in root.iter():
        name = _local(el.tag)
        if name == "username":
            username = (el.text or "").strip()
        elif name == "password":
            password = el.text or ""
    return username, password


def soap_login_response(org: Org, version: str, token: str, user: dict[str, Any]) -> str:
    org15 = org.org_id[:15]
    base = org.instance_url
    e = escape
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
        f"<metadataServerUrl>{e(base)}/services/Soap/m/{version}/{org15}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{e(base)}/services/Soap/u/{version}/{org15}</serverUrl>"
        f"<sessionId>{e(token)}</sessionId><userId>{e(org.user_id)}</userId><userInfo>"
        "<accessibilityMode>false</accessibilityMode><chatterExternal>false</chatterExternal>"
        "<currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>"
        "<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>"
        "<orgDefaultCurrencyLocale>en_US</orgDefaultCurrencyLocale>"
        "<orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>"
        "<orgHasPersonAccounts>false</orgHasPersonAccounts>"
        f"<organizationId>{e(org.org_id)}</organizationId><organizationMultiCurrency>false"
        f"</organizationMultiCurrency><organizationName>{e(str(user.get('CompanyName') or 'Emulated Org'))}"
        f"</organizationName><profileId>{e(str(user.get('ProfileId') or ''))}</profileId><roleId "
        'xsi:nil="true"/>'
        f"<sessionSecondsValid>{int(org.sessions.ttl)}</sessionSecondsValid>"
        f'<userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>{e(str(user.get("Email") or ""))}'
        f"</userEmail><userFullName>{e(str(user.get('Name') or 'Integration User'))}</userFullName>"
        f"<userId>{e(org.user_id)}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale>"
        f"<userName>{e(org.config.credentials.username)}</userName>"
        "<userTimeZone>America/Los_Angeles</userTimeZone><userType>Standard</userType>"
        "<userUiSkin>Theme3</userUiSkin></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )


def integration_user(org: Org) -> dict[str, Any]:
    row = org.store.get("User", org.user_id)
    return dict(row) if row else {}


def identity_body(org: Org, version: str = "59.0") -> dict[str, Any]:
    user = integration_user(org)
    v = version
    base = org.instance_url
    org15, user_id = org.org_id, org.user_id
    urls = {
        "enterprise": f"{base}/services/Soap/c/{{version}}/{org15[:15]}",
        "metadata": f"{base}/services/Soap/m/{{version}}/{org15[:15]}",
        "partner": f"{base}/services/Soap/u/{{version}}/{org15[:15]}",
        "rest": f"{base}/services/data/v{{version}}/",
        "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
        "search": f"{base}/services/data/v{{version}}/search/",
        "query": f"{base}/services/data/v{{version}}/query/",
        "recent": f"{base}/services/data/v{{version}}/recent/",
        "tooling_soap": f"{base}/services/Soap/T/{{version}}/{org15[:15]}",
        "tooling_rest": f"{base}/services/data/v{{version}}/tooling/",
        "profile": f"{base}/{user_id}",
        "feeds": f"{base}/services/data/v{{version}}/chatter/feeds",
        "groups": f"{base}/services/data/v{{version}}/chatter/groups",
        "users": f"{base}/services/data/v{{version}}/chatter/users",
        "feed_items": f"{base}/services/data/v{{version}}/chatter/feed-items",
        "custom_domain": base,
    }
    del v
    name = str(user.get("Name") or "Integration User")
    first, _, last = name.partition(" ")
    return {
        "sub": org.identity_url(),
        "user_id": user_id,
        "organization_id": org15,
        "preferred_username": org.config.credentials.username,
        "nickname": org.config.credentials.username.split("@")[0],
        "name": name,
        "email": user.get("Email") or org.config.credentials.username,
        "email_verified": True,
        "given_name": first,
        "family_name": last or first,
        "zoneinfo": "America/Los_Angeles",
        "photos": {"picture": f"{base}/profilephoto/005/F", "thumbnail": f"{base}/profilephoto/005/T"},
        "profile": f"{base}/{user_id}",
        "picture": f"{base}/profilephoto/005/F",
        "address": {"country": "US"},
        "is_salesforce_integration_user": False,
        "urls": urls,
        "active": True,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": -28800000,
        "updated_at": "2024-01-01T00:00:00Z",
        "is_app_installed": True,
    }


def make_router(org: Org) -> APIRouter:
    router = APIRouter()

    @router.post("/services/oauth2/token")
    async def oauth_token(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype and "multipart/form-data" not in ctype:
            form: dict[str, str] = dict(request.query_params)
        else:
            form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            body = grant_token(org, form, request.headers)
        except OAuthError as exc:
            return _oauth_error(exc)
        return JSONResponse(body, media_type=JSON_UTF8)

    @router.get("/services/oauth2/token")
    async def oauth_token_get() -> Response:
        return _oauth_error(OAuthError(400, "invalid_request", "must use HTTP POST"))

    @router.post("/services/Soap/u/{version}")
    @router.post("/services/Soap/u/{version}/")
    @router.post("/services/Soap/u/{version}/{rest:path}")
    async def soap_login(request: Request, version: str) -> Response:
        try:
            major = float(version)
        except ValueError:
            return soap_fault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}")
        if not 20 <= major <= max(64, MAX_API_VERSION):
            return soap_fault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}")
        raw = await request.body()
        try:
            username, password = parse_soap_login(raw)
        except ElementTree.ParseError:
            return soap_fault("INVALID_LOGIN", INVALID_LOGIN_MESSAGE)
        creds = org.config.credentials
        ok = _eq(username, creds.username) and _eq(password, creds.password + creds.security_token)
        if not ok:
            if _eq(username, creds.username) and _eq(password, creds.password):
                return soap_fault(
                    "LOGIN_MUST_USE_SECURITY_TOKEN",
                    "Invalid username, password, security token; or user locked out. Are you at a new "
                    "location? When accessing Salesforce--either via a desktop client or the API--from "
                    "outside of your company's trusted networks, you must add a security token to your "
                    "password to log in. To get your new security token, log in to Salesforce. From your "
                    "personal settings, enter Reset My Security Token in the Quick Find box, then select "
                    "Reset My Security Token.",
                )
            return soap_fault("INVALID_LOGIN", INVALID_LOGIN_MESSAGE)
        token, _ = org.sessions.mint(org.user_id, "soap")
        body = soap_login_response(org, f"{major:.1f}", token, integration_user(org))
        return Response(body, media_type="text/xml; charset=utf-8")

    @router.get("/services/oauth2/userinfo")
    @router.post("/services/oauth2/userinfo")
    async def userinfo(request: Request) -> Response:
        if org.sessions.check(bearer_token(request.headers)) is None:
            return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
        return JSONResponse(identity_body(org), media_type=JSON_UTF8)

    @router.get("/id/{org_id}/{user_id}")
    async def identity(request: Request, org_id: str, user_id: str) -> Response:
        if org.sessions.check(bearer_token(request.headers)) is None:
            return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
        if org_id[:15] != org.org_id[:15] or user_id[:15] != org.user_id[:15]:
            return Response("Bad_Id", status_code=404, media_type="text/plain")
        body = identity_body(org)
        body.update(
            {
                "id": org.identity_url(),
                "asserted_user": True,
                "username": org.config.credentials.username,
                "nick_name": body["nickname"],
                "display_name": body["name"],
                "status": {"created_date": None, "body": None},
                "last_modified_date": "2024-01-01T00:00:00.000+0000",
            }
        )
        return JSONResponse(body, media_type=JSON_UTF8)

    @router.post("/services/oauth2/revoke")
    async def revoke(request: Request) -> Response:
        return Response(status_code=200)

    return router


def new_refresh_token() -> str:
    return "5Aep861" + random_secret(80, _TOKEN_CHARS)
