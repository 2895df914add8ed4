"""``sfvault key list|add|remove|rotate|export``: the key-encryption keys of the repository.

The data keys never change, so no chunk or manifest is rewritten; see ``engine.sink.keyslots``
and docs/FORMAT.md section 2.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import CONFIG_OPT
from engine.config import load_settings
from engine.console import run_cli

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.sink.keys import KekProvider
    from engine.sink.repository import Repository

key_app = typer.Typer(help="Manage the key-encryption keys that open the repository.", no_args_is_help=True)


def _open(config: Path | None, key_file: Path | None) -> tuple[Repository, KekProvider, Settings]:
    """The repository opened with ``key_file`` (default: the configured key file) and that key."""
    from engine.sink.backends import open_backend
    from engine.sink.keys import kek_for_reference
    from engine.sink.repository import Repository, read_config

    settings = load_settings(config)
    backend = open_backend(settings.repository_url, settings)
    kek = kek_for_reference(read_config(backend).kek, key_file=key_file or settings.key_file)
    return Repository.open(backend, kek, settings=settings), kek, settings


@key_app.command("list")
def key_list(config: Path | None = CONFIG_OPT) -> None:
    """List the keys that open the repository (the primary one is in config)."""

    def body() -> None:
        from engine.sink.keyslots import key_id, list_keys

        repo, kek, _settings = _open(config, None)
        try:
            in_use = key_id(kek.reference())
            typer.echo(f"{'':1} {'KEY ID':<16}  {'PROVIDER':<15}  {'PRIMARY':<7}  ADDED")
            for k in list_keys(repo.backend, repo.config.doc):
                mark = "*" if k.key_id == in_use else " "
                primary = "yes" if k.primary else "no"
                typer.echo(f"{mark} {k.key_id:<16}  {k.provider:<15}  {primary:<7}  {k.created_at}")
        finally:
            repo.close()

    run_cli(body)


@key_app.command("add")
def key_add(
    new_key_file: Path = typer.Option(..., "--new-key-file", help="create this key file (0600) and add it"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Create a new key file and let it open the repository too (the current key keeps working)."""

    def body() -> None:
        from engine.sink.keys import LocalKeyFile
        from engine.sink.keyslots import add_key

        repo, _kek, _settings = _open(config, None)
        try:
            new = LocalKeyFile.create(new_key_file)
            kid = add_key(repo.backend, repo.config.doc, repo.keys, new, repo.clock.now().isoformat())
        finally:
            repo.close()
        typer.echo(f"added key {kid}: {new_key_file} (keep a copy elsewhere)")

    run_cli(body)


@key_app.command("remove")
def key_remove(key: str = typer.Argument(..., help="the key id (`sfvault key list`)"),
               config: Path | None = CONFIG_OPT) -> None:  # fmt: skip
    """Remove a key that is not the primary one: it no longer opens the repository."""

    def body() -> None:
        from engine.sink.keyslots import key_id, remove_key

        repo, kek, _settings = _open(config, None)
        try:
            remove_key(repo.backend, repo.config.doc, key, in_use=key_id(kek.reference()))
        finally:
            repo.close()
        typer.echo(f"removed key {key}")

    run_cli(body)


@key_app.command("rotate")
def key_rotate(config: Path | None = CONFIG_OPT) -> None:
    """Replace the primary key by a new one: the data keys are wrapped again (no chunk is
    rewritten), the configured key file gets the new key and the old one is kept beside it."""

    def body() -> None:
        from engine.errors import ConfigError
        from engine.sink.keys import LocalKeyFile
        from engine.sink.keyslots import rotate

        repo, kek, settings = _open(config, None)
        try:
            if not isinstance(kek, LocalKeyFile):
                raise ConfigError(
                    what="rotate a Key Vault key in the vault; `sfvault key add` adds a key file"
                )
            path = Path(settings.key_file)
            staged = path.with_name(path.name + ".new")
            new = LocalKeyFile.create(staged)
            kid = rotate(repo.backend, repo.config.doc, repo.keys, new, repo.clock.now().isoformat())
            old = path.with_name(f"{path.name}.old-{kek.fingerprint}")
            os.replace(path, old)
            os.replace(staged, path)
        finally:
            repo.close()
        typer.echo(f"primary key is now {kid} in {path}; the old key ({old}) no longer opens the repository")
        typer.echo("export a key backup now: sfvault key export --out <file>")

    run_cli(body)


@key_app.command("export")
def key_export(
    out: Path = typer.Option(..., "--out", help="write the key backup here (mode 0600; never overwritten)"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Write a key backup: the key in use and the repository config, all that opens the repository."""

    def body() -> None:
        from engine.sink.keyslots import write_key_backup

        repo, kek, _settings = _open(config, None)
        try:
            write_key_backup(out, repo.config.doc, kek)
        finally:
            repo.close()
        typer.echo(f"wrote key backup {out} (mode 0600): store it apart from the repository")

    run_cli(body)
