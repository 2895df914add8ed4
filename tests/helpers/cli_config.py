"""The ``sfvault.toml`` a CLI test passes with ``--config``: settings of a test env, by name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.config import Settings


def write_config(path: Path, settings: Settings, keys: Iterable[str], **extra: object) -> Path:
    """Write ``path`` as an ``[sfvault]`` table of ``settings``' values at ``keys``, then ``extra``
    (in that order); numbers are written bare, anything else as a quoted string."""
    values = {**{k: getattr(settings, k) for k in keys}, **extra}
    lines = [f"{k} = {v}" if isinstance(v, int | float) else f'{k} = "{v}"' for k, v in values.items()]
    path.write_text("[sfvault]\n" + "\n".join(lines) + "\n")
    return path


def cli_config(settings: Settings, folder: Path) -> Path:
    """``folder/sfvault.toml`` for the command line over a test env's repository and catalog: its
    key file, a scratch folder in ``folder``, no retry wait and a minute of retries at most."""
    path = folder / "sfvault.toml"
    return write_config(
        path, settings, ("repository_url", "key_file", "catalog_url"),
        scratch_dir=folder / "scratch", retry_wait_max=0, retry_max_seconds=60,
    )  # fmt: skip
