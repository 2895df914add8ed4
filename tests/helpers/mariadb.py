"""A real MariaDB server for the test session (SETUP_NOTES pitfall 7): no systemd, temp datadir, free port.

The ``mariadb`` fixture fails (never skips) when MariaDB is not installed: ``make test`` installs it
through ``scripts/install-system-deps.sh``. Tests that use it carry the ``mysql`` marker.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


class MariaDBStartError(RuntimeError):
    """MariaDB is missing or did not answer before the deadline."""


@dataclass
class MariaDB:
    proc: subprocess.Popen[bytes]
    socket: Path
    port: int
    datadir: Path
    log: Path

    def client_args(self, database: str | None = None) -> list[str]:
        args = [_binary("mariadb", "mysql"), f"--socket={self.socket}", "--user=root",
                "--default-character-set=utf8mb4", "--batch", "--raw"]  # fmt: skip
        return args + ([database] if database else [])

    def run_sql(self, sql: str, database: str | None = None) -> str:
        """Run statements through the ``mysql`` client; raises with its stderr on failure."""
        res = subprocess.run(self.client_args(database), input=sql.encode(), capture_output=True, timeout=300)
        if res.returncode != 0:
            raise AssertionError(f"mysql client failed: {res.stderr.decode(errors='replace')}")
        return res.stdout.decode()

    def load_file(self, path: Path, database: str) -> None:
        with path.open("rb") as fh:
            res = subprocess.run(self.client_args(database), stdin=fh, capture_output=True, timeout=600)
        if res.returncode != 0:
            raise AssertionError(f"loading {path.name} failed: {res.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def _binary(*names: str) -> str:
    for n in names:
        found = shutil.which(n) or (f"/usr/sbin/{n}" if Path(f"/usr/sbin/{n}").exists() else None)
        if found:
            return found
    raise MariaDBStartError(f"none of {names} is installed; run scripts/install-system-deps.sh")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mariadb(base: Path, *, timeout: float = 60) -> MariaDB:
    install = _binary("mariadb-install-db", "mysql_install_db")
    server = _binary("mariadbd", "mysqld")
    admin = _binary("mariadb-admin", "mysqladmin")
    datadir, sock, log = base / "data", base / "mysqld.sock", base / "mysqld.log"
    res = subprocess.run(
        [install, "--user=root", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db"], capture_output=True, timeout=120,
    )  # fmt: skip
    if res.returncode != 0:
        raise MariaDBStartError(f"mariadb-install-db failed: {res.stderr.decode(errors='replace')[-2000:]}")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", "--skip-grant-tables", "--character-set-server=utf8mb4",
         "--collation-server=utf8mb4_bin", "--max-allowed-packet=64M", f"--log-error={log}",
         f"--pid-file={base / 'mysqld.pid'}", "--innodb-buffer-pool-size=64M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    db = MariaDB(proc, sock, port, datadir, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # poll with a deadline (not a fixed sleep)
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise MariaDBStartError(f"mariadbd exited with {proc.returncode}: {tail}")
        ping = subprocess.run(
            [admin, f"--socket={sock}", "--user=root", "ping"], capture_output=True, timeout=10
        )
        if ping.returncode == 0:
            return db
        time.sleep(0.05)
    db.stop()
    raise MariaDBStartError(f"mariadbd did not answer within {timeout}s")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A running MariaDB server for the session; fails (never skips) when it cannot start."""
    try:
        db = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    except MariaDBStartError as exc:
        pytest.fail(f"MariaDB could not start: {exc}", pytrace=False)
    try:
        yield db
    finally:
        db.stop()
