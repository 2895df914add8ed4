"""``sfvault org ...``: connected Salesforce orgs (add, update, list, remove).

Secrets never need the command line (decision 0023): the password, security token and client
secret come from a file (``--password-file``, ``--security-token-file``,
``--client-secret-file``), from ``SFVAULT_PASSWORD``, ``SFVAULT_SECURITY_TOKEN`` and
``SFVAULT_CLIENT_SECRET``, or from a hidden prompt on a terminal. The old ``--password``,
``--security-token`` and ``--client-secret`` options still work but are deprecated: they put the
secret into the process list, so each use prints a warning. No secret is ever printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import CONFIG_OPT
from engine.config import load_settings
from engine.console import err_console, run_cli
from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.jobs.connect import OrgTile

org_app = typer.Typer(help="Connected Salesforce orgs.", no_args_is_help=True)


@dataclass(frozen=True)
class SecretSource:
    """Where one secret may come from: its name, its environment variable and its file option."""

    field: str
    env: str
    file_opt: str
    argv_opt: str
    prompt: str


SECRETS = (
    SecretSource("password", "SFVAULT_PASSWORD", "--password-file", "--password", "Password"),
    SecretSource(
        "security_token",
        "SFVAULT_SECURITY_TOKEN",
        "--security-token-file",
        "--security-token",
        "Security token (empty if the IP is trusted)",
    ),
    SecretSource(
        "client_secret", "SFVAULT_CLIENT_SECRET", "--client-secret-file", "--client-secret", "Client secret"
    ),
)


SECRET_FILE_MAX_BYTES = 64 * 1024
"""A secret file longer than this is not a secret file (``/dev/zero``, ``/dev/full`` never end)."""


def _read_secret_file(path: Path, opt: str) -> str:
    """A secret file's text without its final line break (``-`` is standard input)."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(SECRET_FILE_MAX_BYTES + 1)
        else:
            with path.open("rb") as f:
                data = f.read(SECRET_FILE_MAX_BYTES + 1)
        if len(data) > SECRET_FILE_MAX_BYTES:
            raise ConfigError(what=f"{opt} {path}: over {SECRET_FILE_MAX_BYTES} bytes, not a secret file")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(what=f"{opt} {path}: cannot read it ({type(exc).__name__})") from None
    return text.rstrip("\r\n")


def _deprecated_argv(opt: str, env: str, file_opt: str) -> None:
    err_console.print(
        f"[yellow]warning[/] {opt} is deprecated: the value is visible in the process list; "
        f"use {file_opt}, {env}, or the prompt"
    )


def resolve_secret(src: SecretSource, *, argv: str | None, file: Path | None) -> str | None:
    """The secret from its file, its argv option (deprecated) or its variable; None if none gives it.

    Raises:
        ConfigError: two of them are given, or the file cannot be read.
    """
    if argv is not None and file is not None:
        raise ConfigError(what=f"give {src.argv_opt} or {src.file_opt}, not both")
    if file is not None:
        return _read_secret_file(file, src.file_opt)
    if argv is not None:
        _deprecated_argv(src.argv_opt, src.env, src.file_opt)
        return argv
    return os.environ.get(src.env)


def prompt_secret(src: SecretSource) -> str | None:
    """Ask for a secret on the terminal without echo; None when there is no terminal."""
    if not sys.stdin.isatty():
        return None
    value: str = typer.prompt(src.prompt, default="", hide_input=True, show_default=False)
    return value


def _secrets(
    argv: dict[str, str | None], files: dict[str, Path | None], *, ask: set[str]
) -> dict[str, str | None]:
    """Every secret from its sources; those in ``ask`` and not given are prompted for on a terminal."""
    out: dict[str, str | None] = {}
    for src in SECRETS:
        value = resolve_secret(src, argv=argv.get(src.field), file=files.get(src.field))
        if value is None and src.field in ask:
            value = prompt_secret(src)
        out[src.field] = value
    return out


PASSWORD_FILE_OPT = typer.Option(
    None, "--password-file", help="file holding the password ('-' = stdin); or SFVAULT_PASSWORD"
)
TOKEN_FILE_OPT = typer.Option(
    None, "--security-token-file", help="file holding the security token; or SFVAULT_SECURITY_TOKEN"
)
SECRET_FILE_OPT = typer.Option(
    None, "--client-secret-file", help="file holding the connected app secret; or SFVAULT_CLIENT_SECRET"
)
PASSWORD_OPT = typer.Option(None, "--password", help="DEPRECATED (visible in the process list)", hidden=True)
TOKEN_OPT = typer.Option(
    None, "--security-token", help="DEPRECATED (visible in the process list)", hidden=True
)
SECRET_OPT = typer.Option(
    None, "--client-secret", help="DEPRECATED (visible in the process list)", hidden=True
)


@org_app.command("add")
def org_add(
    name: str = typer.Argument(..., help="a short name for the org ([A-Za-z0-9._-])"),
    instance_url: str = typer.Option(..., "--instance-url", help="https://<my-domain>.my.salesforce.com"),
    username: str | None = typer.Option(None, "--username", help="integration user"),
    client_id: str | None = typer.Option(None, "--client-id", help="connected app consumer key"),
    password_file: Path | None = PASSWORD_FILE_OPT,
    security_token_file: Path | None = TOKEN_FILE_OPT,
    client_secret_file: Path | None = SECRET_FILE_OPT,
    password: str | None = PASSWORD_OPT,
    security_token: str | None = TOKEN_OPT,
    client_secret: str | None = SECRET_OPT,
    login_url: str | None = typer.Option(
        None, "--login-url", help="OAuth host (default https://login.salesforce.com)"
    ),
    ca_file: str | None = typer.Option(None, "--ca-file", help="extra CA certificate (test orgs)"),
    time_zone: str | None = typer.Option(
        None, "--time-zone", help="the schedule's IANA zone (default: the org's own, read from Salesforce)"
    ),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Connect an org: the credentials are checked against it, then stored encrypted in the catalog.

    Secrets come from --password-file / --security-token-file / --client-secret-file, from
    SFVAULT_PASSWORD / SFVAULT_SECURITY_TOKEN / SFVAULT_CLIENT_SECRET, or from a hidden prompt.
    """

    def body() -> None:
        from engine.catalog.db import open_catalog
        from engine.jobs.connect import connect_org
        from engine.jobs.credentials import credentials_record, new_catalog_sealer

        settings = load_settings(config)
        ask = {"password", "security_token"} if username else set()
        if client_id:
            ask.add("client_secret")
        secrets = _secrets(
            {"password": password, "security_token": security_token, "client_secret": client_secret},
            {
                "password": password_file,
                "security_token": security_token_file,
                "client_secret": client_secret_file,
            },
            ask=ask,
        )
        if username and not secrets["password"]:
            # else the username would be dropped silently for the client-credentials flow
            raise ConfigError(
                what=f"--username {username} needs its password: --password-file, SFVAULT_PASSWORD, "
                "or run on a terminal to be asked"
            )
        record = credentials_record(
            instance_url=instance_url, username=username, client_id=client_id, login_url=login_url,
            ca_file=ca_file, **secrets,
        )  # fmt: skip
        sealer, write_key = new_catalog_sealer(settings)  # the key file is written only when it is saved
        with open_catalog(settings.catalog_url) as sessions:
            org = connect_org(
                settings, sessions, name=name, record=record, time_zone=time_zone, sealer=sealer,
                before_save=write_key,
            )  # fmt: skip
        typer.echo(
            f"connected org {name} ({org.sf_org_id or 'org id unknown'}, time zone {org.time_zone}); "
            f"credentials checked and stored encrypted; API allowance "
            f"{org.api_remaining if org.api_remaining is not None else '?'}"
            f"/{org.api_max if org.api_max is not None else '?'} left today"
        )

    run_cli(body)


@org_app.command("update")
def org_update(
    name: str = typer.Argument(..., help="the connected org"),
    instance_url: str | None = typer.Option(None, "--instance-url", help="a new My Domain URL"),
    username: str | None = typer.Option(None, "--username", help="a new integration user"),
    client_id: str | None = typer.Option(None, "--client-id", help="a new connected app consumer key"),
    password_file: Path | None = PASSWORD_FILE_OPT,
    security_token_file: Path | None = TOKEN_FILE_OPT,
    client_secret_file: Path | None = SECRET_FILE_OPT,
    password: str | None = PASSWORD_OPT,
    security_token: str | None = TOKEN_OPT,
    client_secret: str | None = SECRET_OPT,
    login_url: str | None = typer.Option(None, "--login-url", help="a new OAuth host ('' = the default)"),
    ca_file: str | None = typer.Option(None, "--ca-file", help="a new CA certificate file ('' = none)"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Change a connected org's credentials (e.g. after a password change); checked before saved.

    Only what is given changes; settings, schedule and jobs stay. With nothing given on a
    terminal it asks for the new password and security token. Also stores credentials of an org
    that `sfvault catalog rebuild` brought back without them.
    """

    def body() -> None:
        from engine.catalog.db import open_catalog
        from engine.jobs.connect import update_credentials
        from engine.jobs.credentials import catalog_sealer

        settings = load_settings(config)
        plain = {
            "instance_url": instance_url, "username": username, "client_id": client_id,
            "login_url": login_url, "ca_file": ca_file,
        }  # fmt: skip
        argv = {"password": password, "security_token": security_token, "client_secret": client_secret}
        files = {
            "password": password_file,
            "security_token": security_token_file,
            "client_secret": client_secret_file,
        }
        given = any(v is not None for v in (*plain.values(), *argv.values(), *files.values()))
        given = given or any(os.environ.get(src.env) is not None for src in SECRETS)
        changes: dict[str, str | None] = {
            **plain,
            **_secrets(argv, files, ask=set() if given else {"password", "security_token"}),
        }
        if all(v is None for v in changes.values()):
            raise ConfigError(
                what="nothing to update: give --password-file (or SFVAULT_PASSWORD, or run it on a terminal "
                "to be asked), --security-token-file, --client-secret-file, --username, ..."
            )
        with open_catalog(settings.catalog_url) as sessions:
            org = update_credentials(
                settings, sessions, name=name, changes=changes, sealer=catalog_sealer(settings, create=True)
            )
        typer.echo(
            f"updated the credentials of org {name} ({org.sf_org_id or 'org id unknown'}): checked against "
            f"Salesforce and stored encrypted; settings and schedule unchanged"
        )

    run_cli(body)


@org_app.command("list")
def org_list(
    as_json: bool = typer.Option(False, "--json", help="print JSON (the API's tile shape) for scripts"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Every connected org: last job, next scheduled job, and why protection is stopped."""

    def body() -> None:
        from engine.catalog.db import catalog_transaction
        from engine.clock import SystemClock
        from engine.jobs.connect import org_tiles

        settings = load_settings(config)
        with catalog_transaction(settings.catalog_url) as s:
            tiles = org_tiles(s, hidden=None, now=SystemClock().now())
        if as_json:
            from api.routes.orgs import tile_model

            typer.echo(json.dumps([tile_model(t).model_dump(mode="json") for t in tiles], indent=2))
            return
        _print_tiles(tiles)

    run_cli(body)


def _print_tiles(tiles: Sequence[OrgTile]) -> None:
    """One line per org, columns separated by two spaces and never cut (ids stay copyable)."""
    if not tiles:
        typer.echo("no orgs connected; connect one with `sfvault org add`")
        return
    rows = [("ORG", "HIDDEN", "LAST JOB", "STATE", "NEXT JOB", "STOPPED")]
    for t in tiles:
        last, nxt = t.last_job, t.next_job_at
        stops = "; ".join(f"{r.code or '-'} {r.reason}" for r in t.stops) or "-"
        rows.append(
            (
                t.name, "yes" if t.hidden else "-", last.id if last else "-", last.state if last else "-",
                nxt.isoformat() if nxt else "-", stops,
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@org_app.command("remove")
def org_remove(
    name: str = typer.Argument(..., help="the connected org"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Disconnect an org: its catalog rows (jobs, settings, credentials) go; its snapshots stay.

    Refused while one of its jobs is queued or running. `sfvault catalog rebuild` brings its jobs
    back from the repository.
    """

    def body() -> None:
        from engine.catalog.db import open_catalog
        from engine.jobs.connect import disconnect_org

        settings = load_settings(config)
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(what=f"removing org {name} needs --yes when not on a terminal")
            typer.confirm(f"Remove org {name} from the catalog (its snapshots stay)?", abort=True)
        with open_catalog(settings.catalog_url) as sessions:
            disconnect_org(sessions, name)
        typer.echo(f"removed org {name} from the catalog; its snapshots stay in the repository")

    run_cli(body)
