"""The ``sfvault`` command line: a thin Typer front end over the engine.

This is the only engine module that knows about the terminal. Every command maps
``SfvaultError`` to its exit code through :func:`run_cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from emulator.cli import app as emulator_app
from engine.errors import SfvaultError

app = typer.Typer(name="sfvault", help="Backup engine for Salesforce.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator", help="Run and drive the Salesforce org emulator.")

err_console = Console(stderr=True)
T = TypeVar("T")


def run_cli(fn: Callable[[], T]) -> T:
    """Run a command body; print an ``SfvaultError`` as one line and exit with its code."""
    try:
        return fn()
    except SfvaultError as err:
        err_console.print(f"[bold red]error[/] {err}")
        sys.exit(err.exit_code)


@app.command()
def version() -> None:
    """Print the sfvault version."""
    from engine import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
