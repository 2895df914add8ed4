"""Run ``sfvault serve`` (uvicorn) in its own process, and talk to it.

:func:`start_api_server` writes nothing itself: it runs ``sfvault serve --port N``
with the given config file and environment, on a free loopback port, and waits (with a
deadline, never a fixed sleep) until ``GET /healthz`` answers 200. It raises
:class:`ApiServerStartError` with the server's log when the process exits or never gets
ready, so a fixture built on it fails instead of skipping (STYLE rule 16).

:func:`write_config` writes an ``sfvault.toml`` with an ``[sfvault]`` table, and
:func:`create_token` runs ``sfvault token create`` against the same config, as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devkit.postgres import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
# the installed console script (what operators run); `python -m engine.cli` as a fallback
_SCRIPT = Path(sys.executable).parent / "sfvault"
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine.cli"]


class ApiServerStartError(RuntimeError):
    """``sfvault serve`` exited or did not answer /healthz before the deadline."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(path: Path, values: Mapping[str, Any]) -> Path:
    """Write ``values`` as the ``[sfvault]`` table of a TOML config file; returns ``path``."""
    lines = ["[sfvault]"] + [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("SFVAULT_") or k.startswith("SFVAULT_TEST_")
    }
    return {**base, "PYTHONUNBUFFERED": "1", **(env or {})}


def create_token(config: Path, name: str, role: str, env: Mapping[str, str] | None = None) -> str:
    """``sfvault token create --name NAME --role ROLE --config CONFIG``; returns the printed token."""
    proc = subprocess.run(
        [*CLI, "token", "create", "--name", name, "--role", role, "--config", str(config)],
        cwd=REPO_ROOT,
        env=_child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sfvault token create failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    token = proc.stdout.strip().splitlines()[-1].strip()
    assert token, f"sfvault token create printed no token: {proc.stderr}"
    return token


@dataclass
class ApiServer:
    """A running ``sfvault serve``: its base URL, ``client()`` for requests, ``stop()``."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    def client(self, token: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False)
        self._clients.append(c)
        return c

    def log_tail(self, n: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        for c in self._clients:
            c.close()
        self._clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)


def start_api_server(
    config: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    no_scheduler: bool = True,
    timeout: float = 120.0,
) -> ApiServer:
    """Start ``sfvault serve --config CONFIG --port N`` and wait until ``/healthz`` answers."""
    port = port or free_port()
    args = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config)]
    if no_scheduler:
        args.append("--no-scheduler")
    log_file = tempfile.NamedTemporaryFile(prefix="sfvault-serve-", suffix=".log", delete=False)  # noqa: SIM115
    log_path = Path(log_file.name)
    proc = subprocess.Popen(
        args, cwd=REPO_ROOT, env=_child_env(env), stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log_file.close()
    server = ApiServer(proc=proc, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=5, trust_env=False) as probe:
        while True:
            if proc.poll() is not None:
                raise ApiServerStartError(
                    f"sfvault serve exited with {proc.returncode} before it was ready:\n{server.log_tail()}"
                )
            try:
                if probe.get("/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise ApiServerStartError(f"sfvault serve not ready in {timeout:.0f}s:\n{server.log_tail()}")
            time.sleep(0.1)


@contextmanager
def running_api_server(config: Path, **kwargs: Any) -> Iterator[ApiServer]:
    """``start_api_server`` as a context manager: the server is stopped on the way out."""
    server = start_api_server(config, **kwargs)
    try:
        yield server
    finally:
        server.stop()
