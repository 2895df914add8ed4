"""The ``sfvault`` command line: a thin Typer front end over the engine.

This package is the only engine code that knows about the terminal. Each module holds one group of
commands; this file is the table of every command. Every command, the mounted ``serve``, ``token``
and ``emulator`` ones too, runs inside one error boundary (:class:`engine.console.BoundaryGroup`,
the root group's class): an error is one coded line and its exit code, never a traceback
(``--debug`` or ``SFVAULT_DEBUG=1`` adds it).
"""

from __future__ import annotations

import typer

from api.cli import serve, token_app
from emulator.cli import app as emulator_app
from engine.cli import catalog, cdp, exports, jobs, keys, orgs, recovery, repair, repository, settings
from engine.console import BoundaryGroup, set_debug

app = typer.Typer(
    name="sfvault", help="Backup engine for Salesforce.", no_args_is_help=True, cls=BoundaryGroup,
    pretty_exceptions_enable=False,
)  # fmt: skip


@app.callback()
def main(
    debug: bool = typer.Option(
        False, "--debug", envvar="SFVAULT_DEBUG", help="print the traceback below an error's coded line"
    ),
) -> None:
    """Backup engine for Salesforce."""
    set_debug(debug)


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
app.add_typer(cdp.cdp_app, name="cdp")
app.command("recovery-point")(cdp.recovery_point)
app.command("serve")(serve)
app.add_typer(token_app, name="token")
app.add_typer(emulator_app, name="emulator", help="Run and drive the Salesforce org emulator.")

__all__ = ["app"]
