"""The ``sfvault`` command line: a thin Typer front end over the engine.

This package is the only engine code that knows about the terminal. Each module holds one group of
commands; this file is the table of every command. Every command maps ``SfvaultError`` to its exit
code through :func:`engine.console.run_cli`.
"""

from __future__ import annotations

import typer

from api.cli import serve, token_app
from emulator.cli import app as emulator_app
from engine.cli import catalog, exports, jobs, keys, orgs, recovery, repair, repository, settings

app = typer.Typer(name="sfvault", help="Backup engine for Salesforce.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the sfvault version."""
    from engine import __version__

    typer.echo(__version__)


app.command()(repository.init)
app.command()(repository.verify)
app.command()(repository.prune)
app.command()(repair.repair)
app.add_typer(keys.key_app, name="key")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(orgs.org_app, name="org")
app.add_typer(settings.settings_app, name="settings")
app.command()(jobs.backup)
app.command("jobs")(jobs.jobs_list)
app.add_typer(jobs.job_app, name="job")
app.command()(recovery.data)
app.command()(recovery.compare)
app.add_typer(exports.export_app, name="export")
app.command("serve")(serve)
app.add_typer(token_app, name="token")
app.add_typer(emulator_app, name="emulator", help="Run and drive the Salesforce org emulator.")

__all__ = ["app"]
