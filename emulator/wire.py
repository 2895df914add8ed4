"""What the emulator puts on the wire around every route: header names and the request path.

:class:`WireMiddleware` is the outermost pure-ASGI layer of the app. It does two things
Salesforce does and Starlette does not:

* **Header names as Salesforce spells them.** Starlette lowercases every response header name
  (``content-type``, ``sforce-locator``); Salesforce sends ``Content-Type``, ``Sforce-Locator``,
  ``Sforce-NumberOfRecords``, ``Sforce-Limit-Info``. HTTP says names are case-insensitive, but
  some published clients look headers up in a plain dict, so the raw names of
  ``http.response.start`` are rewritten here (:func:`canonical_name`). The server must then
  write names as it is given them: uvicorn's ``httptools`` protocol lowercases them again, its
  ``h11`` protocol keeps them, so :mod:`emulator.server` runs uvicorn with ``http="h11"`` and
  without its own (lowercase) ``date`` header; this layer adds ``Date`` instead, read from the
  org's clock when it is given one: Salesforce's ``Date`` is its own server time, and the
  emulated org's time is its controllable clock (a client may read the org's time from it).
* **A doubled leading slash.** ``GET //services/data/v62.0/...`` (an instance URL stored with a
  trailing slash) is served as ``/services/data/v62.0/...``, as Salesforce serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SALESFORCE_NAMES: dict[bytes, bytes] = {
    n.lower().encode(): n.encode()
    for n in (
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Content-Disposition",
        "Transfer-Encoding",
        "Location",
        "Date",
        "ETag",
        "Last-Modified",
        "Cache-Control",
        "Expires",
        "Pragma",
        "Vary",
        "Allow",
        "Set-Cookie",
        "WWW-Authenticate",
        "Sforce-Locator",
        "Sforce-NumberOfRecords",
        "Sforce-Limit-Info",
        "Sforce-Query-Options",
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "X-Robots-Tag",
    )
}


def canonical_name(name: bytes) -> bytes:
    """``sforce-numberofrecords`` -> ``Sforce-NumberOfRecords``; unknown names title-cased per word."""
    low = name.lower()
    known = SALESFORCE_NAMES.get(low)
    if known is not None:
        return known
    return b"-".join(part[:1].upper() + part[1:] for part in low.split(b"-"))


def collapse_leading_slashes(path: str) -> str:
    """``//services/data`` -> ``/services/data`` (only the leading run of slashes)."""
    if not path.startswith("//"):
        return path
    return "/" + path.lstrip("/")


class WireMiddleware:
    """Canonical header names (and a ``Date``) on every response; ``//`` paths served as ``/``."""

    def __init__(self, app: ASGIApp, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.clock = clock
        """The org's clock for ``Date`` (None: the machine's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("//"):
            scope = dict(scope)
            scope["path"] = collapse_leading_slashes(path)
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.startswith(b"//"):
                scope["raw_path"] = b"/" + raw.lstrip(b"/")

        async def send_canonical(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(canonical_name(k), v) for k, v in message.get("headers", [])]
                if not any(k == b"Date" for k, _ in headers):
                    at = self.clock().timestamp() if self.clock is not None else None
                    headers.insert(0, (b"Date", formatdate(at, usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_canonical)
