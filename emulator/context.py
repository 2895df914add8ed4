"""Shared runtime state of one emulated org behind the HTTP layer, and its error types.

The HTTP modules (``auth``, ``rest``, ``bulk2``, ``admin``) each build a router over one
:class:`Org`; ``app.create_app`` wires them together. Nothing here imports FastAPI routes, so
every HTTP module can import this one without cycles.
"""

from __future__ import annotations

import secrets
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.auth import SessionStore
    from emulator.bulk1 import Bulk1Manager
    from emulator.bulk2 import JobManager
    from emulator.limits import RequestLog, UsageLimits
    from emulator.profiles import FaultInjector, Profile
    from emulator.rest import QueryCursors
    from emulator.schema import ObjectDef
    from emulator.store import OrgStore

MIN_API_VERSION = 31
MAX_API_VERSION = 62
DEFAULT_API_VERSION = "59.0"
ADMIN_PREFIX = "/__emulator"
ADMIN_HEADER = "X-Emulator-Admin-Secret"

_SEASONS = ("Winter", "Spring", "Summer")


def api_versions() -> list[str]:
    """Every API version this emulator serves, ascending (``"31.0"`` ... ``"62.0"``)."""
    return [f"{v}.0" for v in range(MIN_API_VERSION, MAX_API_VERSION + 1)]


def release_label(version: str) -> str:
    """The release name of an API version: ``59.0`` is ``Winter '24``, ``60.0`` ``Spring '24``."""
    k = int(float(version)) - 59
    return f"{_SEASONS[k % 3]} '{24 + k // 3:02d}"


def parse_version(segment: str) -> str | None:
    """``"v59.0"`` -> ``"59.0"`` when it is a served version, else ``None``."""
    if not segment.startswith("v"):
        return None
    raw = segment[1:]
    try:
        major = float(raw)
    except ValueError:
        return None
    if raw != f"{major:.1f}" or not MIN_API_VERSION <= major <= MAX_API_VERSION or major != int(major):
        return None
    return raw


class ApiError(Exception):
    """A Salesforce REST error: a JSON list ``[{"message", "errorCode"[, "fields"]}]``."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, error_code, message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_session() -> ApiError:
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


class OAuthError(Exception):
    """An OAuth token endpoint error: ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, error, description)
        self.status = status
        self.error = error
        self.description = description


_TOKEN_ALPHABET = string.ascii_letters + string.digits


def random_secret(n: int = 24, alphabet: str = _TOKEN_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Credentials:
    """What a client needs to log in. Never logged; only printed once by ``serve``."""

    username: str
    password: str
    security_token: str
    client_id: str
    client_secret: str
    admin_secret: str
    refresh_token: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secrets=<redacted>)"

    @classmethod
    def generate(cls, username: str = "integration@emulator.sfvault.dev") -> Credentials:
        return cls(
            username=username,
            password=random_secret(16),
            security_token=random_secret(24),
            client_id="3MVG9" + random_secret(80, _TOKEN_ALPHABET + "._"),
            client_secret=random_secret(64, string.hexdigits.upper()[:16]),
            admin_secret=random_secret(32),
            refresh_token="5Aep861" + random_secret(80, _TOKEN_ALPHABET + "._"),
        )


@dataclass
class EmulatorConfig:
    """Settings of the HTTP layer. ``instance_url`` is filled in once the port is known."""

    instance_url: str = "http://127.0.0.1:8765"
    credentials: Credentials = field(default_factory=Credentials.generate)
    session_ttl: float = 7200.0
    daily_api_requests: int = 100_000
    count_limits_calls: bool = True
    rest_page_size: int = 2000
    bulk_default_page_rows: int = 100_000
    work_dir: Path | None = None
    profile_name: str = "fast"
    jwt_public_key_pem: bytes | None = None
    request_log_size: int = 200_000
    threads: int = 128
    """Worker threads for blocking work (DuckDB calls, result streams): bounds concurrent streams."""

    def resolved_work_dir(self) -> Path:
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="sfvault-emulator-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir


@dataclass
class Org:
    """One emulated org as the HTTP layer sees it."""

    store: OrgStore
    config: EmulatorConfig
    sessions: SessionStore
    limits: UsageLimits
    request_log: RequestLog
    faults: FaultInjector
    profile: Profile
    jobs: JobManager
    cursors: QueryCursors
    bulk1: Bulk1Manager | None = None
    """Bulk API 1.0 jobs; set by :func:`emulator.bulk1.install` when the app is built."""

    @property
    def instance_url(self) -> str:
        return self.config.instance_url

    @property
    def org_id(self) -> str:
        return str(self.store.org_id)

    @property
    def user_id(self) -> str:
        return str(self.store.integration_user_id)

    @property
    def schema(self) -> dict[str, ObjectDef]:
        """The schema as the API user sees it: field-level security from the org's own
        ``FieldPermissions`` applied (:mod:`emulator.fls`). Routes describe and query this one;
        the store keeps writing through its full schema."""
        from emulator.fls import visible_schema

        return visible_schema(self.store, self.user_id)

    def identity_url(self) -> str:
        return f"{self.instance_url}/id/{self.org_id}/{self.user_id}"
