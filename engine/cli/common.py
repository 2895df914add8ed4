"""What every command module shares: the --config option, opening the repository, as-of phrases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.config import load_settings

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.model import ObjectAsOf
    from engine.sink.repository import Repository

JSON_OPT = typer.Option(False, "--json", help="print JSON for scripts instead of a table")
CONFIG_OPT = typer.Option(None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)")


def config_path(config: Path | None) -> Path:
    """The config file a command reads: ``--config``, else ``SFVAULT_CONFIG``, else ./sfvault.toml."""
    from engine.config import DEFAULT_CONFIG_PATH

    return config or Path(os.environ.get("SFVAULT_CONFIG", DEFAULT_CONFIG_PATH))


def writable_dir(path: Path, what: str) -> None:
    """Create ``path`` (a folder the command writes) or refuse with SFV-102 before any work starts."""
    from engine.errors import PathUnusable

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PathUnusable(path=str(path), what=f"{what}: {err.strerror or type(err).__name__}") from err
    if not path.is_dir():
        raise PathUnusable(path=str(path), what=f"{what}: not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise PathUnusable(path=str(path), what=f"{what}: not writable by this user")
    probe = path / f".sfvault-probe-{os.getpid()}"
    try:  # os.access says yes on a read-only mount (and for root): try it
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PathUnusable(path=str(path), what=f"{what}: {err.strerror or type(err).__name__}") from err


def writable_file(path: Path, what: str, *, folder: bool = False) -> None:
    """Refuse before any work starts when ``path`` (a file the command will write) cannot be written:
    a directory, a special file (``/dev/full``), or a folder where no file can be created (``/proc``,
    a read-only mount, which root passes ``os.access`` on). Creates nothing that stays."""
    import tempfile

    from engine.errors import PathUnusable

    if folder:
        if path.exists() and not path.is_dir():
            raise PathUnusable(path=str(path), what=f"{what}: exists and is not a folder")
    elif path.is_dir():
        raise PathUnusable(path=str(path), what=f"{what}: is a directory, give a file name")
    elif path.exists() and not path.is_file():
        raise PathUnusable(path=str(path), what=f"{what}: not a regular file")
    parent = path.absolute() if folder and path.is_dir() else path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise PathUnusable(path=str(path), what=f"{what}: no file can be written in {parent} "
                           f"({err.strerror or type(err).__name__})") from err  # fmt: skip


def checked_settings(config: Path | None, *, scratch: bool = True, exports: bool = False) -> Settings:
    """The settings of a command that writes locally: the catalog's folder and, as asked, the
    scratch and export folders are checked (created if missing) before work starts, so an unusable
    one is SFV-102 up front rather than a failure half-way."""
    settings = load_settings(config)
    folders = [(settings.scratch_dir, "scratch_dir")] if scratch else []
    folders += [(settings.export_dir, "export_dir")] if exports else []
    for folder, what in folders:
        writable_dir(Path(folder), what)
    db = sqlite_path(settings.catalog_url)
    if db is not None:
        writable_dir(db.parent, "catalog_url")
    return settings


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` catalog URL, or None (PostgreSQL, in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///") :].split("?", 1)[0]
    return None if not rest or rest.startswith(":memory:") or rest.startswith("file:") else Path(rest)


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
