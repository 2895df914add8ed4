"""The emulated org's Pub/Sub API: Change Data Capture events over gRPC (``eventbus.v1.PubSub``).

:func:`attach` wires it into a running emulator: an :class:`~emulator.pubsub.bus.EventBus` hooked
into the store (every write emits change events for enabled objects), its admin routes on the
app, and the gRPC server on its own port (TLS with the emulator's certificate when it serves https).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from emulator.context import Org
    from emulator.pubsub.server import PubSubServer


def attach(
    app: FastAPI,
    org: Org,
    *,
    host: str,
    port: int = 0,
    tls_files: tuple[Path, Path] | None = None,
) -> PubSubServer:
    """Start the Pub/Sub server for ``org`` and mount its admin routes under the admin prefix.

    ``tls_files`` is (key file, certificate file). Returns the running server (``.port``, ``.stop()``).
    """
    from emulator.context import ADMIN_PREFIX
    from emulator.pubsub import admin
    from emulator.pubsub.bus import EventBus
    from emulator.pubsub.server import start_pubsub

    bus = EventBus(org.store, org.limits)
    org.store.capture = bus.capture
    app.include_router(admin.make_router(org, bus), prefix=ADMIN_PREFIX)
    tls = None if tls_files is None else (tls_files[0].read_bytes(), tls_files[1].read_bytes())
    return start_pubsub(org, bus, host=host, port=port, tls=tls)
