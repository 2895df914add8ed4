"""Start a real Azurite blob service for the tests (STYLE rules 15-16; decision 0001).

``running_azurite(folder)`` starts ``node_modules/.bin/azurite-blob`` on a free loopback port with
its data in ``folder`` and waits, on an Event set by a thread that reads Azurite's output, for the
"listens on" line. It raises (the tests error out, they never skip) when Azurite is missing or
does not come up.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.sink.backends.azure import azurite_connection_string

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
START_TIMEOUT = 30.0


class AzuriteMissing(RuntimeError):
    """Azurite is not installed: run `make deps` (npm ci installs the pinned version)."""


@dataclass
class Azurite:
    port: int
    location: Path
    process: subprocess.Popen[bytes]
    output: list[str]

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_azurite(location: Path, port: int | None = None) -> Iterator[Azurite]:
    """Azurite with its data in ``location``, on ``port`` (default: a free one). A test restarts
    Azurite by leaving the block and entering a new one with the same folder and port: its clients
    reconnect to the same address and find the blobs it had written."""
    if not AZURITE_BIN.exists():
        raise AzuriteMissing(f"{AZURITE_BIN} not found; run `make deps` or `npm ci` in {ROOT}")
    port = port or free_port()
    cmd = [
        str(AZURITE_BIN),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    ready = threading.Event()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            output.append(line)
            if "successfully listens on" in line:
                ready.set()
        ready.set()  # EOF: the process ended; the check below reports it

    reader = threading.Thread(target=pump, name="azurite-output", daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            raise RuntimeError(f"Azurite did not start on port {port}: {' | '.join(output[-20:])}")
        yield Azurite(port=port, location=location, process=proc, output=output)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        reader.join(10)
