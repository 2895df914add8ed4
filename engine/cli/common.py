"""What every command module shares: the --config option, opening the repository, as-of phrases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.config import load_settings
from engine.console import checked_settings, writable_dir, writable_file

__all__ = ["CONFIG_OPT", "JSON_OPT", "checked_settings", "writable_dir", "writable_file"]

if TYPE_CHECKING:
    from engine.model import ObjectAsOf
    from engine.sink.repository import Repository

JSON_OPT = typer.Option(False, "--json", help="print JSON for scripts instead of a table")
CONFIG_OPT = typer.Option(None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)")


def config_path(config: Path | None) -> Path:
    """The config file a command reads: ``--config``, else ``SFVAULT_CONFIG``, else ./sfvault.toml."""
    from engine.config import DEFAULT_CONFIG_PATH

    return config or Path(os.environ.get("SFVAULT_CONFIG", DEFAULT_CONFIG_PATH))


def open_repository_from(config: Path | None) -> Repository:
    from engine.sink.repository import open_repository

    return open_repository(load_settings(config))


def as_of_cell(a: ObjectAsOf | None) -> str:
    """A table cell: ``this job``, ``job <id>`` (an earlier job), ``absent``, or empty."""
    if a is None:
        return ""
    return {"this_job": "this job", "absent": "absent"}.get(a.as_of, f"job {a.as_of_job}")


def as_of_text(a: ObjectAsOf, job: str) -> str:
    """Why an object is not as of ``job`` and which job it is as of, in one phrase."""
    why = f"failed in job {job} ({a.error_code})" if a.error_code else f"not backed up by job {job}"
    if a.as_of == "absent":
        return f"absent: {why}, and no earlier job of the cycle backed it up"
    if a.as_of == "earlier_job":
        return f"as of earlier job {a.as_of_job}: {why}"
    return f"as of job {a.as_of_job}"
