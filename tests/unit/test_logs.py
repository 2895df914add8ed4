"""Log lines go to standard error: standard output carries only a command's result (``--json``)."""

from __future__ import annotations

import pytest
import structlog

import engine  # noqa: F401  (configures logging on import)


def test_a_structlog_line_goes_to_stderr_not_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.get_logger("sfvault.test").warning("removing stale lock", holder="someone")
    out, err = capsys.readouterr()
    assert out == ""
    assert "removing stale lock" in err and "holder=" in err

