"""The emulator's request log holds a request before the client can have read its whole answer.

Tests count Salesforce calls from this log right after a response. When the log was written after
the app returned, a streamed answer's last bytes reached the client first, and a test's next call
could look at a log without it (clean-clone CI: ``test_realistic_profile_caps_stream_bandwidth``).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from emulator.app import SalesforceMiddleware
from emulator.limits import RequestLog
from emulator.profiles import Profile


async def _streamed_answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
    await send({"type": "http.response.body", "body": b"y" * 5, "more_body": False})
    await asyncio.sleep(0)  # what a streaming response does after its last chunk (cancel its listener)


def _serve(app: Any, log: RequestLog, client_side: Send) -> None:
    """Answer one ``GET /__emulator/info`` with ``app`` through the real middleware, logging to ``log``."""
    org: Any = SimpleNamespace(request_log=log, profile=Profile())

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/__emulator/info", "headers": []}
    asyncio.run(SalesforceMiddleware(app, org)(scope, receive, client_side))


def test_a_request_is_in_the_log_when_its_last_bytes_are_sent() -> None:
    log = RequestLog()
    seen_at_last_chunk: list[list[dict[str, Any]]] = []

    async def client_side(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            seen_at_last_chunk.append(log.entries())

    _serve(_streamed_answer, log, client_side)

    assert len(seen_at_last_chunk) == 1
    (entry,) = seen_at_last_chunk[0]
    assert (entry["method"], entry["path"], entry["status"], entry["bytes"]) == (
        "GET",
        "/__emulator/info",
        200,
        15,
    )
    assert len(log.entries()) == 1  # and logged once, not again when the app returns


async def _streamed_with_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Starlette's ``StreamingResponse`` with a ``Content-Length`` (a Bulk result page without gzip):
    every chunk goes with ``more_body``, and the closing empty message comes once the iterator is
    exhausted, after the client already has every byte it was told of."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
    await send({"type": "http.response.body", "body": b"y" * 5, "more_body": True})
    await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def test_a_request_with_a_length_is_in_the_log_when_its_last_byte_is_sent() -> None:
    """Clean-clone CI beside a benchmark (session 15): ``test_realistic_profile_caps_stream_bandwidth``
    read the log after the whole page and found no ``bulk2_results`` entry; the entry was written on
    the closing empty message, which came after the page's last byte."""
    log = RequestLog()
    sent = 0
    seen_when_complete: list[list[dict[str, Any]]] = []

    async def client_side(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            before = sent
            sent += len(message.get("body", b""))
            if before < 15 <= sent:  # the client has the whole answer now
                seen_when_complete.append(log.entries())

    _serve(_streamed_with_length, log, client_side)

    assert len(seen_when_complete) == 1
    assert [(e["path"], e["bytes"]) for e in seen_when_complete[0]] == [("/__emulator/info", 15)]
    assert len(log.entries()) == 1


def test_an_answer_that_never_ends_is_still_logged() -> None:
    log = RequestLog()

    async def dropped(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ConnectionResetError

    async def send(message: Message) -> None:
        return None

    try:
        _serve(dropped, log, send)
    except ConnectionResetError:
        pass
    assert [e["status"] for e in log.entries()] == [200]
