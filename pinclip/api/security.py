"""Optional API-key auth and opt-in CORS.

With `PINCLIP_API_KEY` set, every request needs the key — in the configured header
(`PINCLIP_API_KEY_HEADER`, default X-API-Key) or as `Authorization: Bearer <key>` (what
Prometheus' `authorization` scrape setting and the gallery send) — except:
- `/health`: liveness probes carry no credentials;
- the gallery's static shell (`/`, `/static/…`): HTML, JS and CSS with no data in them; the
  page asks for the key and sends it with every data request.
The key is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from pinclip.api.problems import problem_response

PUBLIC_PATHS = frozenset({"/health", "/"})
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str, header: str) -> None:
        self.app = app
        self._key = key.encode()
        self._header = header.lower().encode("latin-1")

    def _presented(self, scope: Scope) -> bytes:
        headers = dict(scope.get("headers") or [])
        value: bytes = headers.get(self._header, b"")
        if value:
            return value
        authorization: bytes = headers.get(b"authorization", b"")
        scheme, _, token = authorization.partition(b" ")
        return token.strip() if scheme.lower() == b"bearer" else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if hmac.compare_digest(self._presented(scope), self._key):
            await self.app(scope, receive, send)
            return
        response = problem_response(
            "unauthorized",
            "send the API key in the configured header or as 'Authorization: Bearer <key>'",
            instance=scope["path"],
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
