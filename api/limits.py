"""Request body limit: an ASGI middleware that refuses bodies over ``max_body_bytes`` with 413.

A body announced larger by ``Content-Length`` is refused before a byte of it is read; a body
without a length (chunked) is read up to the limit and refused as soon as it passes it. Either way
the app never sees it and the answer is the one error shape (SFV-906). No route of the API takes
more than a few kilobytes (an org's credentials, a list of object names), so 1 MiB is generous.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from engine.errors import RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1 << 20
"""The default request body limit (1 MiB)."""


class BodyLimit:
    """Refuses HTTP request bodies over ``max_bytes`` (413, SFV-906); other scopes pass through."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send, length)
            return
        if length is not None:  # announced and small enough: the server enforces the length
            await self.app(scope, receive, send)
            return
        body, more = bytearray(), True
        messages: list[Message] = []
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client gone: let the app see it
                messages.append(message)
                break
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await self._refuse(send, None)
                return
        messages.insert(0, {"type": "http.request", "body": bytes(body), "more_body": False})

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, length: int | None) -> None:
        err = RequestTooLarge(limit=self.max_bytes)
        details = {"limit_bytes": self.max_bytes, "content_length": length}
        payload = json.dumps({"code": err.code, "message": err.message, "details": details}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
