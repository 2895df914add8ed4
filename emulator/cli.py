"""``sfvault emulator ...``: serve an emulated org and drive it (churn, clock)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def main() -> None:
    """Salesforce org emulator."""
