"""Terminal helpers shared by every command line module (``engine.cli``, ``api.cli``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

from engine.errors import SfvaultError

err_console = Console(stderr=True)
T = TypeVar("T")


def run_cli(fn: Callable[[], T]) -> T:
    """Run a command body; print an ``SfvaultError`` as one line and exit with its code."""
    try:
        return fn()
    except SfvaultError as err:
        err_console.print(f"[bold red]error[/] {err}")
        sys.exit(err.exit_code)
