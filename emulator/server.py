"""Run one emulated org over HTTP(S) with uvicorn: ``python -m emulator.server [serve flags]``.

:func:`serve` opens (or generates) the org, binds the socket first (so ``--port 0`` works and
the instance URL is known before the app is built), starts uvicorn, and once the server accepts
requests prints the credentials for a person and one line of JSON for scripts
(:func:`ready_line`). ``sfvault emulator serve`` calls the same function.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from emulator.context import ADMIN_HEADER, ADMIN_PREFIX, DEFAULT_API_VERSION, Credentials, EmulatorConfig

CREDENTIALS_FILE = "credentials.json"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    scale: int = 200_000
    seed: int = 1
    profile: str = "fast"
    data_dir: Path | None = None
    tls: bool = False
    session_ttl: float = 7200.0
    custom_objects: int = 2
    file_body_bytes: int = 4096
    daily_api_requests: int = 100_000
    profile_overrides: dict[str, Any] = field(default_factory=dict)
    bulk_page_rows: int = 100_000
    threads: int = 128
    start_time: datetime | None = None
    """Start the org's clock here (frozen while generating, so the same seed gives the same digest)."""
    object_rows: dict[str, int] = field(default_factory=dict)
    """Rows of these objects instead of their share of ``scale`` (e.g. one 5M-row object)."""
    pubsub_port: int = 0
    """Port of the Pub/Sub API (gRPC); 0 picks a free one. The ready line says which."""
    schema_description: dict[str, Any] | None = None
    """Objects added to the org, and their rows (:mod:`emulator.schema_data`)."""


def _load_or_make_credentials(data_dir: Path | None, username: str) -> Credentials:
    if data_dir is not None:
        path = data_dir / CREDENTIALS_FILE
        if path.exists():
            return Credentials(**json.loads(path.read_text()))
    creds = Credentials.generate(username)
    if data_dir is not None:
        path = data_dir / CREDENTIALS_FILE
        path.touch(mode=0o600)
        path.write_text(json.dumps(creds.__dict__))
    return creds


def open_store(opts: ServeOptions, log: Callable[[str], None]) -> Any:
    """The org's store; generated from ``scale``/``seed`` unless ``data_dir`` already holds one."""
    from emulator.clock import EmulatorClock
    from emulator.generator import generate
    from emulator.schema import build_schema
    from emulator.schema_data import load_description
    from emulator.store import OrgStore

    extra, described_rows = load_description(opts.schema_description or {})
    schema = build_schema(opts.custom_objects, extra)
    clock = EmulatorClock(opts.start_time) if opts.start_time is not None else None
    store = OrgStore(opts.data_dir, schema=schema, clock=clock)
    if store.get_meta("generated") is None:
        t0 = time.perf_counter()
        if opts.schema_description:  # a store reopened without options reads its objects back
            store.set_meta("schema_description", json.dumps(opts.schema_description))
            store.set_meta("custom_objects", str(opts.custom_objects))
        counts = generate(
            store, opts.scale, opts.seed, file_body_bytes=opts.file_body_bytes, object_rows=opts.object_rows,
            described_rows=described_rows,
        )  # fmt: skip
        total = sum(counts.values())
        dt = time.perf_counter() - t0
        store.set_meta("generated", json.dumps({"scale": opts.scale, "seed": opts.seed}))
        log(f"generated {total:,} records (scale {opts.scale:,}, seed {opts.seed}) in {dt:.1f}s")
    else:
        log(f"opened existing org in {opts.data_dir} ({store.get_meta('generated')})")
    if opts.start_time is not None:
        store.clock.unfreeze()
    return store


def ready_line(config: EmulatorConfig, login_url: str, ca_file: str | None) -> dict[str, Any]:
    c = config.credentials
    return {
        "instance_url": config.instance_url,
        "login_url": login_url,
        "username": c.username,
        "password": c.password,
        "security_token": c.security_token,
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "admin_secret": c.admin_secret,
        "refresh_token": c.refresh_token,
        "admin_url": config.instance_url + ADMIN_PREFIX,
        "admin_header": ADMIN_HEADER,
        "api_version": DEFAULT_API_VERSION,
        "profile": config.profile_name,
        "ca_file": ca_file,
        "pid": os.getpid(),
    }


def serve(opts: ServeOptions, *, out: TextIO | None = None, err: TextIO | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Prints the ready lines on ``out`` (stdout), progress on ``err``."""
    import uvicorn

    from emulator.app import build_org, create_app
    from emulator.profiles import profile_by_name
    from emulator.tls import generate_jwt_keypair, generate_self_signed
    from emulator.wire import WireMiddleware

    out = out or sys.stdout
    err = err or sys.stderr

    def log(msg: str) -> None:
        print(f"[emulator] {msg}", file=err, flush=True)

    profile_by_name(opts.profile)  # fail early on a bad name
    store = open_store(opts, log)
    user = store.get("User", store.integration_user_id) or {}
    username = str(user.get("Username") or "integration@emulator.sfvault.dev")
    creds = _load_or_make_credentials(opts.data_dir, username)

    sock = socket.socket(socket.AF_INET6 if ":" in opts.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # inherited by accepted connections: without it a response's header and body writes wait out
    # the client's delayed ACK (about 40 ms per request, which caps file-body downloads)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((opts.host, opts.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    scheme = "https" if opts.tls else "http"
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    instance_url = f"{scheme}://{host}:{port}"

    work_dir = Path(tempfile.mkdtemp(prefix="sfvault-emulator-"))
    ssl_kw: dict[str, Any] = {}
    ca_file: str | None = None
    tls_files: tuple[Path, Path] | None = None
    if opts.tls:
        tls = generate_self_signed(work_dir / "tls", (opts.host,))
        ssl_kw = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
        ca_file = str(tls.cert_file)
        tls_files = (tls.key_file, tls.cert_file)

    jwt_key_file, jwt_public = generate_jwt_keypair(work_dir / "jwt")
    config = EmulatorConfig(
        instance_url=instance_url,
        credentials=creds,
        session_ttl=opts.session_ttl,
        daily_api_requests=opts.daily_api_requests,
        bulk_default_page_rows=opts.bulk_page_rows,
        work_dir=work_dir / "work",
        profile_name=opts.profile,
        jwt_public_key_pem=jwt_public,
        threads=opts.threads,
    )
    org = build_org(store, config)
    if opts.profile_overrides:
        org.profile.update(opts.profile_overrides)
    app = create_app(store, config, org=org)
    from emulator import pubsub

    pubsub_server = pubsub.attach(app, org, host=opts.host, port=opts.pubsub_port, tls_files=tls_files)

    uv_config = uvicorn.Config(
        # wrapped once more: the 500s of Starlette's ServerErrorMiddleware (outside every
        # app middleware) get Salesforce's header names too (the layer is idempotent)
        WireMiddleware(app),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=65,
        timeout_graceful_shutdown=1,
        server_header=False,
        # header names as Salesforce spells them (emulator.wire): h11 writes the names it is
        # given, httptools lowercases them; the middleware adds ``Date`` (uvicorn's is lowercase)
        http="h11",
        date_header=False,
        **ssl_kw,
    )
    server = uvicorn.Server(uv_config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        line = ready_line(config, instance_url, ca_file)
        line["jwt_private_key_file"] = str(jwt_key_file)
        line["pubsub_url"] = f"{host}:{pubsub_server.port}"
        print(f"Salesforce org emulator ready at {instance_url} (profile {opts.profile})", file=out)
        print(f"  username        {creds.username}", file=out)
        print(f"  password        {creds.password}", file=out)
        print(f"  security token  {creds.security_token}", file=out)
        print(f"  admin API       {instance_url}{ADMIN_PREFIX}  (header {ADMIN_HEADER})", file=out)
        print(f"  Pub/Sub API     {host}:{pubsub_server.port}  (gRPC{', TLS' if opts.tls else ''})", file=out)
        if ca_file:
            print(f"  CA certificate  {ca_file}", file=out)
        print(json.dumps(line), file=out, flush=True)

    threading.Thread(target=announce, name="emulator-announce", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        pubsub_server.stop()
        sock.close()
        store.close()
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    from emulator.cli import app

    app(["serve", *(sys.argv[1:] if argv is None else argv)], prog_name="python -m emulator.server")


if __name__ == "__main__":
    main()
