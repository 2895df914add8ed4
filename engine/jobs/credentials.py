"""Org credentials: the sealer that protects them in the catalog, and the grant built from them.

The catalog stores credentials only sealed (``engine.catalog.secrets``). The 32-byte sealing key
lives in ``catalog-secrets.key`` next to the repository's key file (mode 0600, created when the
first org is saved, or by the service's first start); like the key file it never enters the
repository, the catalog or a Dask task (decision 0002).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, TypeAdapter

from engine.catalog.secrets import AesGcmSealer
from engine.config import Settings
from engine.errors import ConfigError, KeyFileInsecure, KeyFileInvalid, PathUnusable
from engine.extract.auth import (
    ClientCredentialsGrant,
    Credentials,
    PasswordGrant,
    RefreshTokenGrant,
    SessionIdGrant,
)
from engine.extract.client import ClientOptions

SECRETS_KEY_NAME = "catalog-secrets.key"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
_CREDENTIALS = TypeAdapter(Credentials)


def secrets_key_path(settings: Settings) -> Path:
    return Path(settings.key_file).expanduser().resolve().parent / SECRETS_KEY_NAME


def catalog_sealer(settings: Settings, *, create: bool = False) -> AesGcmSealer:
    """The sealer of org credentials; ``create`` makes the key file if it is missing."""
    path = secrets_key_path(settings)
    if not path.exists():
        if not create:
            raise ConfigError(
                what=f"secrets key {path} is missing, so no stored credentials open; restore it from "
                "your backup, or store each org's credentials again with `sfvault org update ORG`"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    try:
        st = path.stat()
        if os.name == "posix" and st.st_mode & 0o077:
            raise KeyFileInsecure(path=str(path))
        key = path.read_bytes()
    except OSError as err:  # a directory, no permission: the key cannot be read
        raise KeyFileInvalid(path=str(path), what=err.strerror or type(err).__name__) from None
    if len(key) != 32:
        raise KeyFileInvalid(path=str(path), what="not 32 bytes")
    return AesGcmSealer(key)


def new_catalog_sealer(settings: Settings) -> tuple[AesGcmSealer, Callable[[], None]]:
    """The sealer of a catalog whose secrets key may not exist yet, and the step that writes it.

    With a key file: its sealer and a no-op. Without: a sealer over a fresh key held in memory and
    a function that creates the key file (0600; refused if one appeared meanwhile). ``sfvault org
    add`` calls it only once the org is checked against Salesforce and about to be saved, so a
    refused org add leaves no key file behind (decision 0029).
    """
    path = secrets_key_path(settings)
    if path.exists():
        return catalog_sealer(settings), lambda: None
    key = os.urandom(32)

    def write() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(what=f"secrets key {path} appeared while the org was connected; "
                              "connect it again") from None  # fmt: skip
        except OSError as err:
            raise PathUnusable(path=str(path), what=err.strerror or type(err).__name__) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)

    return AesGcmSealer(key), write


def check_key_files(settings: Settings) -> None:
    """Open the key files a service will need, before it listens: the repository's key file and
    the catalog's secrets key, when they exist (a first start creates them when they are needed).

    Raises:
        KeyFileInvalid, KeyFileInsecure: a key file exists but cannot be read, is not a key, or
            is readable by other users (SFV-305, SFV-303).
    """
    from engine.sink.keys import LocalKeyFile

    key_file = Path(settings.key_file).expanduser()
    if os.path.lexists(key_file):
        LocalKeyFile.load(key_file)
    if os.path.lexists(secrets_key_path(settings)):
        catalog_sealer(settings)


def credentials_record(
    *,
    instance_url: str,
    username: str | None = None,
    password: str | None = None,
    security_token: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
    login_url: str | None = None,
    ca_file: str | None = None,
) -> dict[str, str]:
    """The flat mapping the catalog seals (which grant follows from which fields are given)."""
    rec: dict[str, str] = {"instance_url": instance_url.rstrip("/")}
    for k, v in (
        ("username", username),
        ("password", password),
        ("security_token", security_token),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("refresh_token", refresh_token),
        ("login_url", login_url),
        ("ca_file", ca_file),
    ):
        if v:
            rec[k] = v
    grant_from_record(rec)  # refuse incomplete combinations now, not at backup time
    return rec


def grant_from_record(rec: dict[str, Any]) -> Credentials:
    """The OAuth grant of a credentials record.

    * username + password (+ token) + client id/secret: username-password flow;
    * refresh token + client id: refresh-token flow;
    * client id + secret only: client-credentials flow against the instance (My Domain) URL.
    """
    login = str(rec.get("login_url") or rec.get("instance_url") or DEFAULT_LOGIN_URL)
    if rec.get("username") and rec.get("password"):
        if not rec.get("client_id") or not rec.get("client_secret"):
            raise ConfigError(
                what="the username-password flow needs a connected app: give --client-id and --client-secret"
            )
        return PasswordGrant(
            login_url=login,
            client_id=str(rec["client_id"]),
            client_secret=SecretStr(str(rec["client_secret"])),
            username=str(rec["username"]),
            password=SecretStr(str(rec["password"])),
            security_token=SecretStr(str(rec.get("security_token", ""))),
        )
    if rec.get("refresh_token") and rec.get("client_id"):
        secret = rec.get("client_secret")
        return RefreshTokenGrant(
            login_url=login,
            client_id=str(rec["client_id"]),
            client_secret=SecretStr(str(secret)) if secret else None,
            refresh_token=SecretStr(str(rec["refresh_token"])),
        )
    if rec.get("client_id") and rec.get("client_secret"):
        return ClientCredentialsGrant(
            login_url=str(rec.get("instance_url") or login),
            client_id=str(rec["client_id"]),
            client_secret=SecretStr(str(rec["client_secret"])),
        )
    if rec.get("session_id"):
        return SessionIdGrant(
            instance_url=str(rec["instance_url"]), session_id=SecretStr(str(rec["session_id"]))
        )
    raise ConfigError(what="credentials need username + password, a refresh token, or client id + secret")


def client_options(rec: dict[str, Any], settings: Settings, **overrides: Any) -> ClientOptions:
    """Client options for an org: its CA file (self-signed test orgs); loopback ignores proxies."""
    host = urlsplit(str(rec.get("instance_url", ""))).hostname or ""
    values: dict[str, Any] = {}
    if rec.get("ca_file"):
        values["ca_file"] = str(rec["ca_file"])
    if host in ("127.0.0.1", "localhost", "::1"):
        values["trust_env"] = False
    values.update(overrides)
    return ClientOptions.from_settings(settings, **values)


def auth_kind(grant: Credentials) -> str:
    return "jwt" if grant.kind == "jwt_bearer" else grant.kind
