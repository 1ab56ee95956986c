"""Answers sent before the request body has ended: read and discard the rest, answer, close.

An upload over the cap (413), a request without the API key (401) or an image search beyond
the slots (429) is answered without reading the body. A client that writes its whole body
before it reads (httpx, requests, most scripts: a 30 MB multipart upload, say) is then still
sending when the answer is ready. Closing a socket with unread bytes in it makes the kernel send
a TCP reset, and the reset throws away the answer the client has not read yet: the client sees
"connection reset" and no status at all. (uvicorn's h11 protocol, instead, goes on reading and
dropping the rest without any bound, and keeps the connection open.)

So when a response starts before the request body has ended, this middleware first reads the
rest of the body and drops it, chunk by chunk, never keeping it; then it sends the response with
`Connection: close`. Two bounds keep a hostile client from making us read forever: at most
`max_bytes` more bytes (a declared Content-Length beyond that is not read at all) and at most
`timeout_s` seconds. Past either bound the answer goes out at once and the connection closes; a
client still sending may then see a reset. A request that expects `100 Continue` and whose body
was never asked for is answered without reading: the client has not sent the body, and on a
final status it should not (RFC 9110 §10.1.1); reading would send it `100 Continue`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BYTES = 64_000_000
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class _Body:
    declared: int | None  # Content-Length, None when chunked
    received: int = 0
    asked: bool = False
    ended: bool = False


def _body_of(scope: Scope) -> _Body | None:
    """What the request says about its body; None when it has none."""
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length", b"").strip()
    if b"transfer-encoding" in headers:
        return _Body(declared=None)
    if length.isdigit() and int(length) > 0:
        return _Body(declared=int(length))
    return None


class DrainBeforeEarlyAnswer:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _body_of(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"

        async def tracked() -> Message:
            body.asked = True
            message = await receive()
            body.received += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body.ended = True
            return message

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.ended:
                if body.asked or not expects_continue:
                    await self._discard(receive, body)
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*kept, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked, answer)

    async def _discard(self, receive: Receive, body: _Body) -> None:
        if body.declared is not None and body.declared - body.received > self.max_bytes:
            return
        dropped = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while dropped <= self.max_bytes:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    dropped += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        body.ended = True
                        return
        except TimeoutError:
            return
