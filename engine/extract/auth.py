"""OAuth 2.0 against a Salesforce login URL, and the ``Session`` that holds the access token.

Grants (SALESFORCE_API.md §1.1), each a pydantic model whose secrets are ``SecretStr`` (reprs,
logs and errors show ``**********``; STYLE rule 23):

* :class:`PasswordGrant` — username + password with the security token appended;
* :class:`ClientCredentialsGrant` — connected-app key and secret (My Domain host);
* :class:`RefreshTokenGrant` — a standing refresh token (rotation supported);
* :class:`JwtBearerGrant` — an RS256 assertion signed with the connected app's private key;
* :class:`SessionIdGrant` — a given session id and instance URL (no login; cannot refresh).

Secrets go only into the form body of the token request, never into a URL or an error. An
error from the token endpoint keeps Salesforce's ``error`` code and description, which never
contain the credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from engine.clock import Clock
from engine.errors import SalesforceAuthError
from engine.extract.classify import classify_oauth, classify_transport

TOKEN_PATH = "/services/oauth2/token"


class _Grant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _strip_slash(v: str) -> str:
    v = v.strip().rstrip("/")
    if not v.startswith(("https://", "http://")):
        raise ValueError("URL must start with https:// (or http:// for a local emulator)")
    return v


class PasswordGrant(_Grant):
    kind: Literal["password"] = "password"
    login_url: str
    client_id: str
    client_secret: SecretStr
    username: str
    password: SecretStr
    security_token: SecretStr = SecretStr("")

    _v = field_validator("login_url")(_strip_slash)

    def form(self, now: datetime) -> dict[str, str]:
        return {
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            "username": self.username,
            "password": self.password.get_secret_value() + self.security_token.get_secret_value(),
        }


class ClientCredentialsGrant(_Grant):
    kind: Literal["client_credentials"] = "client_credentials"
    login_url: str
    client_id: str
    client_secret: SecretStr

    _v = field_validator("login_url")(_strip_slash)

    def form(self, now: datetime) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
        }


class RefreshTokenGrant(_Grant):
    kind: Literal["refresh_token"] = "refresh_token"
    login_url: str
    client_id: str
    client_secret: SecretStr | None = None
    refresh_token: SecretStr

    _v = field_validator("login_url")(_strip_slash)

    def form(self, now: datetime) -> dict[str, str]:
        f = {"grant_type": "refresh_token", "client_id": self.client_id,
             "refresh_token": self.refresh_token.get_secret_value()}  # fmt: skip
        if self.client_secret is not None:
            f["client_secret"] = self.client_secret.get_secret_value()
        return f


class JwtBearerGrant(_Grant):
    """``aud`` defaults to the login URL (``https://login.salesforce.com``, ``https://test...``)."""

    kind: Literal["jwt_bearer"] = "jwt_bearer"
    login_url: str
    client_id: str
    username: str
    private_key: SecretStr = Field(description="PEM-encoded RSA private key")
    audience: str | None = None
    lifetime_seconds: int = Field(default=180, gt=0, le=300)

    _v = field_validator("login_url")(_strip_slash)

    def assertion(self, now: datetime) -> str:
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.audience or self.login_url,
            "exp": int((now + timedelta(seconds=self.lifetime_seconds)).timestamp()),
        }
        return jwt.encode(claims, self.private_key.get_secret_value(), algorithm="RS256")

    def form(self, now: datetime) -> dict[str, str]:
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion(now)}


class SessionIdGrant(_Grant):
    kind: Literal["session_id"] = "session_id"
    instance_url: str
    session_id: SecretStr

    _v = field_validator("instance_url")(_strip_slash)


Credentials = Annotated[
    PasswordGrant | ClientCredentialsGrant | RefreshTokenGrant | JwtBearerGrant | SessionIdGrant,
    Field(discriminator="kind"),
]
LoginGrant = PasswordGrant | ClientCredentialsGrant | RefreshTokenGrant | JwtBearerGrant


@dataclass(frozen=True)
class Token:
    """An access token and where to use it.

    Attributes:
        access_token: the session id (``Authorization: Bearer``).
        instance_url: base URL for every API call, used verbatim (scheme and port kept).
        identity_url: the ``id`` URL (``.../id/<org id>/<user id>``), if given.
        issued_at: when Salesforce issued it, if given.
        refresh_token: a new refresh token (rotation), if the answer had one.
    """

    access_token: SecretStr
    instance_url: str
    identity_url: str | None = None
    issued_at: datetime | None = None
    refresh_token: SecretStr | None = None

    @property
    def org_id(self) -> str | None:
        """The org Id from the identity URL ``.../id/<org id>/<user id>``."""
        parts = (self.identity_url or "").rstrip("/").split("/")
        return parts[-2] if len(parts) >= 3 and parts[-3] == "id" else None

    @property
    def user_id(self) -> str | None:
        """The logged-in user's Id from the identity URL."""
        parts = (self.identity_url or "").rstrip("/").split("/")
        return parts[-1] if len(parts) >= 3 and parts[-3] == "id" else None


def parse_token(body: dict[str, Any]) -> Token:
    try:
        issued = body.get("issued_at")
        return Token(
            access_token=SecretStr(str(body["access_token"])),
            instance_url=_strip_slash(str(body["instance_url"])),
            identity_url=body.get("id"),
            issued_at=datetime.fromtimestamp(int(issued) / 1000, UTC) if issued else None,
            refresh_token=SecretStr(body["refresh_token"]) if body.get("refresh_token") else None,
        )
    except (KeyError, ValueError, TypeError) as e:
        raise SalesforceAuthError(
            what=f"token answer without {e.__class__.__name__}: missing or bad field"
        ) from e


def request_token(grant: LoginGrant, http: httpx.Client, clock: Clock) -> Token:
    """One token request (no retry here; :class:`Session` runs it inside the client's retry)."""
    try:
        resp = http.post(
            grant.login_url + TOKEN_PATH,
            data=grant.form(clock.now()),
            headers={"Accept": "application/json"},
        )
    except httpx.TransportError as e:
        raise classify_transport(e) from None
    if resp.status_code != 200:
        raise classify_oauth(resp)
    try:
        body = resp.json()
    except ValueError as e:
        raise SalesforceAuthError(what="token endpoint answered something that is not JSON") from e
    return parse_token(body)


TokenFetcher = Callable[[LoginGrant], Token]
"""Runs the token request for a grant (the client wraps :func:`request_token` in its retry)."""


class Session:
    """The current access token for one set of credentials, refreshed on demand.

    Thread-safe: worker threads read :meth:`bearer` concurrently; when several of them hit a
    401 with the same stale token, :meth:`refresh` logs in only once (the ``generation`` they
    saw is compared under the lock).
    """

    def __init__(self, credentials: Credentials, fetch: TokenFetcher, *, token: Token | None = None) -> None:
        """``token``: one this session starts with (a job's driver hands its token to the workers,
        so they do not log in again); a 401 refreshes it from ``credentials`` as usual."""
        self._creds = credentials
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: Token | None = token
        self._generation = 0 if token is None else 1
        if token is None and isinstance(credentials, SessionIdGrant):
            self._token = Token(credentials.session_id, credentials.instance_url)
            self._generation = 1

    @staticmethod
    def simple(credentials: Credentials, http: httpx.Client, clock: Clock) -> Session:
        """A session that fetches tokens with ``http`` and no retry (tests, scripts)."""
        return Session(credentials, lambda g: request_token(g, http, clock))

    def __repr__(self) -> str:
        url = self.instance_url_or_none
        return f"Session(kind={self._creds.kind!r}, instance_url={url!r}, generation={self._generation})"

    @property
    def kind(self) -> str:
        return self._creds.kind

    @property
    def credentials(self) -> Credentials:
        """The credentials; after a refresh-token rotation they carry the new refresh token."""
        return self._creds

    @property
    def generation(self) -> int:
        """How many tokens this session has had (0 = not logged in yet)."""
        return self._generation

    @property
    def instance_url_or_none(self) -> str | None:
        return None if self._token is None else self._token.instance_url

    @property
    def token(self) -> Token:
        if self._token is None:
            self.refresh(stale_generation=0)
        assert self._token is not None
        return self._token

    @property
    def instance_url(self) -> str:
        return self.token.instance_url

    def bearer(self) -> tuple[int, str]:
        """``(generation, "Bearer <token>")``: pass the generation to :meth:`refresh` on a 401."""
        self.token  # noqa: B018 (logs in on first use)
        with self._lock:  # token and generation read together: another thread may refresh between
            assert self._token is not None
            return self._generation, "Bearer " + self._token.access_token.get_secret_value()

    def refresh(self, stale_generation: int | None = None) -> None:
        """Get a new access token.

        Args:
            stale_generation: the generation whose token was refused; if the session has
                already moved past it (another thread refreshed), nothing is done.

        Raises:
            SalesforceAuthError: the grant was refused, or the session is a bare session id.
        """
        with self._lock:
            if stale_generation is not None and self._generation != stale_generation:
                return
            creds = self._creds
            if isinstance(creds, SessionIdGrant):
                raise SalesforceAuthError(
                    what="the session id expired and there are no credentials to log in again"
                )
            token = self._fetch(creds)
            if isinstance(creds, RefreshTokenGrant) and token.refresh_token is not None:
                self._creds = creds.model_copy(update={"refresh_token": token.refresh_token})
            self._token = token
            self._generation += 1
