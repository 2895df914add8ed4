"""``sfvault org ...``: connected Salesforce orgs."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import CONFIG_OPT
from engine.config import load_settings
from engine.console import run_cli

org_app = typer.Typer(help="Connected Salesforce orgs.", no_args_is_help=True)


@org_app.command("add")
def org_add(
    name: str = typer.Argument(..., help="a short name for the org ([A-Za-z0-9._-])"),
    instance_url: str = typer.Option(..., "--instance-url", help="https://<my-domain>.my.salesforce.com"),
    username: str | None = typer.Option(None, "--username", help="integration user"),
    password: str | None = typer.Option(None, "--password", help="its password"),
    security_token: str | None = typer.Option(None, "--security-token", help="its security token"),
    client_id: str | None = typer.Option(None, "--client-id", help="connected app consumer key"),
    client_secret: str | None = typer.Option(None, "--client-secret", help="connected app secret"),
    login_url: str | None = typer.Option(
        None, "--login-url", help="OAuth host (default https://login.salesforce.com)"
    ),
    ca_file: str | None = typer.Option(None, "--ca-file", help="extra CA certificate (test orgs)"),
    time_zone: str = typer.Option("UTC", "--time-zone", help="the org's time zone (schedules)"),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Connect an org: the credentials are checked against it, then stored encrypted in the catalog."""

    def body() -> None:
        from engine.catalog.db import open_catalog
        from engine.jobs.connect import connect_org
        from engine.jobs.credentials import catalog_sealer, credentials_record

        settings = load_settings(config)
        record = credentials_record(
            instance_url=instance_url, username=username, password=password,
            security_token=security_token, client_id=client_id, client_secret=client_secret,
            login_url=login_url, ca_file=ca_file,
        )  # fmt: skip
        with open_catalog(settings.catalog_url) as sessions:
            org = connect_org(
                settings, sessions, name=name, record=record, time_zone=time_zone,
                sealer=catalog_sealer(settings, create=True),
            )  # fmt: skip
        typer.echo(
            f"connected org {name} ({org.sf_org_id or 'org id unknown'}); credentials checked and stored "
            f"encrypted; API allowance {org.api_remaining if org.api_remaining is not None else '?'}"
            f"/{org.api_max if org.api_max is not None else '?'} left today"
        )

    run_cli(body)
