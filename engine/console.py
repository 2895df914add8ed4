"""Terminal helpers shared by every command line module (``engine.cli``, ``api.cli``, ``emulator.cli``).

The CLI's one error boundary lives here: :class:`BoundaryGroup` is the class of the root ``sfvault``
group, so every command and subcommand (the ones mounted from ``api.cli`` and ``emulator.cli``
too) runs inside it. Whatever a command raises becomes one line ``error [SFV-NNN] message`` on
stderr and the exit code of that error in :mod:`engine.errors`; an exception outside the tree is
first translated (:func:`as_sfvault_error`). ``--debug`` or ``SFVAULT_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from engine.errors import PathUnusable, SfvaultError, StorageFull, UnexpectedError

if TYPE_CHECKING:
    from engine.config import Settings

err_console = Console(stderr=True, soft_wrap=True)  # one error, one line: grep-able in a log
# Typer's own ends (its exit, its abort, usage errors: exit 2 with the usage line) are not errors of ours
_PASS_THROUGH = (typer.Exit, typer.Abort, TyperException, SystemExit)
T = TypeVar("T")

DEBUG_ENV = "SFVAULT_DEBUG"
_debug = False
PIPE_WIDTH = 10_000


def set_debug(on: bool) -> None:
    """``--debug`` on the root command: tracebacks are printed below the coded line."""
    global _debug
    _debug = on


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _os_error(err: OSError) -> SfvaultError:
    what = err.strerror or str(err) or type(err).__name__
    if err.filename is None:  # a socket, a pipe: no path to name
        from engine.errors import PermanentError

        return PermanentError(what=f"{type(err).__name__}: {what}")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(name=str(err.filename))
    return PathUnusable(path=str(err.filename), what=what)


def as_sfvault_error(err: BaseException) -> SfvaultError:
    """The coded error an exception is reported as: itself for the tree, a translation otherwise."""
    if isinstance(err, SfvaultError):
        return err
    if isinstance(err, OSError):
        return _os_error(err)
    try:
        import httpx

        if isinstance(err, httpx.TransportError):
            from engine.errors import TransientError

            where = f" {err.request.url}" if _has_request(err) else ""
            return TransientError(what=f"cannot reach{where}: {err or type(err).__name__}")
    except ImportError:  # pragma: no cover - httpx is a dependency
        pass
    try:
        from sqlalchemy.exc import DBAPIError

        if isinstance(err, DBAPIError):
            from engine.errors import CatalogError

            orig = str(err.orig).splitlines()[0] if err.orig is not None else type(err).__name__
            return CatalogError(what=f"the catalog database refused the command: {orig}")
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        pass
    what = str(err).splitlines()[0][:300] if str(err) else "no message"
    return UnexpectedError(kind=type(err).__name__, what=what)


def _has_request(err: Any) -> bool:
    try:
        err.request  # noqa: B018 (raises RuntimeError when the error carries no request)
    except RuntimeError:
        return False
    return True


def report(err: BaseException) -> int:
    """Print ``err`` as one coded line (and its traceback when debugging); return its exit code."""
    coded = as_sfvault_error(err)
    if debug_enabled():
        err_console.print("".join(traceback.format_exception(err)), markup=False, highlight=False)
    err_console.print(f"[bold red]error[/] {escape(str(coded))}", highlight=False)
    return coded.exit_code


def run_cli(fn: Callable[[], T]) -> T:
    """Run a command body; print an error as one coded line and exit with its code."""
    try:
        return fn()
    except _PASS_THROUGH:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as err:
        sys.exit(report(err))


class BoundaryGroup(TyperGroup):
    """The root group: every command runs inside its ``invoke``, so none can end in a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer._click.core.Context (vendored click)
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            sys.exit(130)
        except Exception as err:
            sys.exit(report(err))


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
    from engine.config import load_settings

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


def print_json(value: Any) -> None:
    """``--json``: one JSON document on stdout (timestamps ISO 8601) for scripts."""
    import json
    from datetime import date, datetime

    def default(v: Any) -> Any:
        if isinstance(v, datetime | date):
            return v.isoformat()
        return str(v)

    sys.stdout.write(json.dumps(value, default=default, indent=2) + "\n")


def out_console() -> Console:
    """The console tables print on: the terminal's width on a terminal; on a pipe or a file as
    wide as a row needs, so job ids and states are never cut (``sfvault jobs ORG | grep``)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPE_WIDTH)
