"""``sfvault serve`` and ``sfvault token ...``, mounted by :mod:`engine.cli`."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.catalog.models import Role

token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
_CONFIG_OPT = typer.Option(None, "--config", help="config file (default ./sfvault.toml or SFVAULT_CONFIG)")


def serve(
    host: str | None = typer.Option(None, "--host", help="listen address (default: settings.api_host)"),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="listen port (default: settings.api_port; 0 = any)"
    ),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="serve the API without the scheduler"),
    no_cdp: bool = typer.Option(
        False, "--no-cdp", help="serve without the change event subscribers of the protected orgs"
    ),
    config: Path | None = _CONFIG_OPT,
) -> None:
    """Run the REST API and the scheduler in one process (jobs run on the configured Dask cluster)."""
    import uvicorn

    from api.app import create_app
    from engine.console import checked_settings, run_cli
    from engine.jobs.credentials import check_key_files

    def body() -> None:
        # the folders it writes are checked before it listens: a bad one is SFV-102 now, not at the first job
        settings = checked_settings(config, scratch=True, exports=True)
        # and the key files: one that exists but cannot be read is SFV-30x now, not at the first job
        check_key_files(settings)
        app = create_app(settings, scheduler=False if no_scheduler else None, cdp=False if no_cdp else None)
        uvicorn.run(
            app,
            host=host or settings.api_host,
            port=settings.api_port if port is None else port,
            log_level="info",
            access_log=False,
        )

    run_cli(body)


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="who or what uses it (shown in logs, never the token)"),
    role: Role = typer.Option(..., "--role", help="admin | operator | viewer"),
    config: Path | None = _CONFIG_OPT,
) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    from engine.catalog.db import catalog_transaction
    from engine.catalog.tokens import create_token
    from engine.config import load_settings
    from engine.console import run_cli

    def body() -> None:
        with catalog_transaction(load_settings(config).catalog_url) as s:
            row, clear = create_token(s, name=name, role=role)
            token_id = row.id
        typer.echo(clear)
        typer.echo(f"token {token_id} ({name}, {role.value}) created; it is not shown again", err=True)

    run_cli(body)


@token_app.command("list")
def token_list(
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    config: Path | None = _CONFIG_OPT,
) -> None:
    """List tokens (id, name, role, created, last used, revoked); never the tokens themselves."""
    from sqlalchemy import select

    from engine.catalog.db import catalog_transaction
    from engine.catalog.models import ApiToken
    from engine.config import load_settings
    from engine.console import print_json, run_cli

    def body() -> None:
        with catalog_transaction(load_settings(config).catalog_url) as s:
            rows = list(s.scalars(select(ApiToken).order_by(ApiToken.id)))
            if as_json:
                keys = ("id", "name", "role", "created_at", "last_used_at", "revoked_at")
                print_json([{k: getattr(t, k) for k in keys} for t in rows])
                return
            for t in rows:
                state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
                used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                created = f"{t.created_at:%Y-%m-%d}"
                typer.echo(f"{t.id}\t{t.name}\t{t.role}\tcreated {created}\tlast used {used}\t{state}")

    run_cli(body)


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(..., help="the id `token list` shows"),
                 config: Path | None = _CONFIG_OPT) -> None:  # fmt: skip
    """Revoke a token: it stops working at once."""
    from engine.catalog.db import catalog_transaction
    from engine.catalog.tokens import revoke_token
    from engine.config import load_settings
    from engine.console import run_cli

    def body() -> None:
        with catalog_transaction(load_settings(config).catalog_url) as s:
            revoke_token(s, token_id)
        typer.echo(f"token {token_id} revoked")

    run_cli(body)
