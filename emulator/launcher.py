"""Start the Salesforce org emulator in its own process, and talk to it.

:func:`start_emulator` runs ``python -m emulator.server`` on a free port, waits (with a
deadline, never a fixed sleep) for the JSON line it prints once it accepts requests, and
returns an :class:`EmulatorProcess` with that line (``info``), an admin client and ``stop()``.
It raises :class:`EmulatorStartError` (with the process's stderr) when the emulator cannot
start, so a fixture built on it fails instead of skipping. Scripts (``scripts/backup_demo.py``),
benchmarks and tests all start the emulator through this module.

:func:`salesforce_session` builds the ``requests.Session`` that real clients such as
simple-salesforce are given: it trusts the emulator's self-signed certificate, ignores the
environment's CA bundle and proxies, and routes the Salesforce login hosts to the emulator.
(``requests`` is imported only there: it is not a dependency of the emulator itself.)
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

if TYPE_CHECKING:
    import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The folder that holds the ``emulator`` package (the server's working directory)."""
ADMIN_PREFIX = "/__emulator"
ADMIN_HEADER = "X-Emulator-Admin-Secret"
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")


class EmulatorStartError(RuntimeError):
    """The emulator process exited or printed nothing usable before the deadline."""


@dataclass
class EmulatorProcess:
    proc: subprocess.Popen[str]
    info: dict[str, Any]
    stderr_path: Path
    args: list[str]
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return str(self.info["instance_url"])

    @property
    def verify(self) -> Any:
        return self.info.get("ca_file") or True

    def http(self) -> httpx.Client:
        """A plain HTTP client on the instance URL (no auth headers)."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, verify=self.verify, timeout=120, trust_env=False)
        return self._client

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        """Call the admin API; returns the decoded JSON (or None for 204). Raises on errors."""
        headers = {ADMIN_HEADER: self.info["admin_secret"], **kw.pop("headers", {})}
        resp = self.http().request(method, ADMIN_PREFIX + path, headers=headers, **kw)
        resp.raise_for_status()
        return None if resp.status_code == 204 or not resp.content else resp.json()

    def sql(self, text: str, *params: Any) -> list[list[Any]]:
        """Rows of a read-only SQL query over the org's store (ground truth for assertions)."""
        return list(self.admin("POST", "/sql", json={"sql": text, "params": list(params)})["rows"])

    def token(self, **extra: str) -> str:
        """A fresh access token (OAuth password grant)."""
        i = self.info
        resp = self.http().post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": i["client_id"],
                "client_secret": i["client_secret"],
                "username": i["username"],
                "password": i["password"] + i["security_token"],
                **extra,
            },
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def stop(self, timeout: float = 15) -> int:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def start_emulator(
    *,
    scale: int = 2000,
    seed: int = 1,
    profile: str = "fast",
    tls: bool = True,
    extra_args: list[str] | None = None,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
    wide_org: int | None = 0,
) -> EmulatorProcess:
    """Start ``python -m emulator.server`` on a free port and wait until it serves.

    ``wide_org``: objects of a real org's shape added to the 27 core ones (``--wide-org``; an
    ``extra_args`` value wins). 0 by default, unlike the server's own default (several hundred):
    a test or benchmark reads the core objects unless it asks; None takes the server's default.
    """
    args = [
        sys.executable,
        "-m",
        "emulator.server",
        "--port",
        "0",
        "--scale",
        str(scale),
        "--seed",
        str(seed),
        "--profile",
        profile,
        *(["--tls"] if tls else []),
        *([] if wide_org is None else ["--wide-org", str(wide_org)]),
        *(extra_args or []),
    ]
    stderr_file = tempfile.NamedTemporaryFile(prefix="emulator-stderr-", suffix=".log", delete=False)  # noqa: SIM115
    stderr_path = Path(stderr_file.name)
    proc_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
        env=proc_env,
        start_new_session=True,
    )
    stderr_file.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="emulator-stdout", daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise EmulatorStartError(
                f"emulator did not get ready in {timeout:.0f}s; stderr:\n{_tail(stderr_path)}"
            )
        try:
            line = lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if line is None:
            proc.wait(10)
            raise EmulatorStartError(
                f"emulator exited with {proc.returncode} before it was ready; stderr:\n{_tail(stderr_path)}"
            )
        if line.startswith("{"):
            info = json.loads(line)
            return EmulatorProcess(proc=proc, info=info, stderr_path=stderr_path, args=args)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def salesforce_session(info: dict[str, Any]) -> requests.Session:
    """A ``requests.Session`` for real Salesforce clients pointed at the emulator.

    Trusts the emulator's certificate (``ca_file``), ignores ``REQUESTS_CA_BUNDLE``/proxies from
    the environment (``trust_env = False``) and routes ``https://login.salesforce.com`` and
    ``https://test.salesforce.com`` to the emulator's instance URL.
    """
    import requests
    from requests.adapters import HTTPAdapter

    class _RouteToEmulator(HTTPAdapter):
        """Sends requests for a Salesforce login host to the emulator instead."""

        def __init__(self, target: str) -> None:
            super().__init__()
            self.target = urlsplit(target)

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(request.url)
            request.url = urlunsplit(
                (self.target.scheme, self.target.netloc, parts.path, parts.query, parts.fragment)
            )
            return super().send(request, *args, **kwargs)

    session = requests.Session()
    session.trust_env = False
    session.verify = info.get("ca_file") or True
    for host in LOGIN_HOSTS:
        session.mount(f"https://{host}", _RouteToEmulator(str(info["instance_url"])))
    return session
