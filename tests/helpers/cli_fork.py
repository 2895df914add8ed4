"""Run many ``sfvault`` command lines, each in its own forked process, paying the imports once.

``python -m tests.helpers.cli_fork`` reads ``{"cwd": ..., "runs": [[arg, ...], ...], "guard_s": N}``
as JSON on stdin and prints one JSON list of ``{"argv", "code", "stdout", "stderr"}``. Each run is
a real process (``os.fork`` after ``engine.cli`` is imported): its own exit status, stdout and
stderr file descriptors (files, not a terminal), working folder and environment without
``SFVAULT_*``; a run still going after ``guard_s`` seconds is killed and reported with code -9.
Starting the interpreter and importing the CLI costs seconds on a busy machine; a fork costs
milliseconds, so a table of hundreds of bad inputs stays affordable.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from typing import Any


def _child(argv: list[str], cwd: str, out: str, err: str) -> None:
    from engine.cli import app

    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.chdir(cwd)
    for k in [k for k in os.environ if k.startswith("SFVAULT_")]:
        del os.environ[k]
    code = 0
    try:
        app(args=argv, prog_name="sfvault")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # an exception that escaped the CLI: print it as Python would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def run_one(argv: list[str], cwd: str, guard_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(argv, cwd, out, err)
        deadline = time.monotonic() + guard_s
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = -9
                break
            time.sleep(0.02)
        with open(out, errors="replace") as fo, open(err, errors="replace") as fe:
            return {"argv": argv, "code": code, "stdout": fo.read(), "stderr": fe.read()}


# what the commands import lazily, imported once before the forks (each fork would pay it again)
PRELOAD = (
    "engine.catalog.db",
    "engine.catalog.rebuild",
    "engine.jobs.service",
    "engine.jobs.exports",
    "engine.jobs.connect",
    "engine.sink.repository",
    "engine.sink.verify",
    "engine.sink.prune",
    "engine.diff.recovery",
    "engine.diff.compare",
    "api.app",
    "uvicorn",
    "emulator.server",
    "httpx",
)


def main() -> None:
    import importlib

    import engine.cli  # noqa: F401 (imported once, before the forks)

    for name in PRELOAD:
        importlib.import_module(name)

    job = json.load(sys.stdin)
    results = [run_one(a, job["cwd"], float(job.get("guard_s", 600))) for a in job["runs"]]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
