"""Where the engine's structured log lines go: standard error, one line per event.

structlog's default writes to standard output, so a warning logged during a command (a stale lock
removed, a retry) landed inside the JSON that ``--json`` prints, and a script reading it failed.
Standard output is for a command's result only; every log line goes to standard error, as the
standard library's ``logging`` lines already do.
"""

from __future__ import annotations

import sys
from typing import Any

import structlog


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # sys.stderr is read at each call, not once: test runners and CliRunner swap it per command
    return structlog.PrintLogger(sys.stderr)


def configure_logging() -> None:
    """Send structlog's lines to the standard error of the moment (idempotent)."""
    structlog.configure(logger_factory=_stderr_logger, cache_logger_on_first_use=False)
