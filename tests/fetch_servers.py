"""A real local HTTP(S) image server that keeps its own request log (fetch-policy tests).

Used through the `image_server` fixture (tests/unit/conftest.py) or `start_image_server`.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

BODY = b"x" * 100
GZIPPED = gzip.compress(b"\0" * 100_000)


@dataclass
class ImageServer:
    """`url(path)`; `requests` is what the server itself saw: (path, Host header)."""

    host: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI seen
    scheme: str = "http"

    def url(self, path: str = "/ok", host: str | None = None) -> str:
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{name}:{self.port}{path}"


def _handler(log: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            log.requests.append((self.path, self.headers.get("Host", "")))
            route = urlsplit(self.path)
            action = ROUTES.get(route.path, _ok)
            action(self, parse_qs(route.query))

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name.replace("_", "-"), value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _ok(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    _send(h, 200, BODY)


def _big(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    _send(h, 200, b"b" * 5_000)


def _chunked_big(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    """No Content-Length: only a streamed cap can stop it."""
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    try:
        for _ in range(1_000):
            h.wfile.write(b"400\r\n" + b"c" * 1024 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")
    except OSError:  # the client hung up at its cap: expected
        pass


def _trickle(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    """A small body, one byte every 50 ms: each read is quick, the whole is slow."""
    h.send_response(200)
    h.send_header("Content-Length", "200")
    h.end_headers()
    try:
        for _ in range(200):
            h.wfile.write(b"t")
            h.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


def _slow(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    time.sleep(float(q.get("s", ["2"])[0]))
    _ok(h, q)


def _gzip(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    """A body that would inflate 1000x if a client decompressed it."""
    _send(h, 200, GZIPPED, Content_Encoding="gzip")


def _missing(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    _send(h, 404, b"no")


def _redirect(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    time.sleep(float(q.get("s", ["0"])[0]))
    if "to" not in q:  # a test's own mistake: say so instead of dropping the connection
        _send(h, 400, b"redirect needs ?to=")
        return
    _send(h, 302, Location=q["to"][0])


def _loop(h: BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
    _send(h, 302, Location="/loop")


ROUTES: dict[str, Callable[[BaseHTTPRequestHandler, dict[str, list[str]]], None]] = {
    "/ok": _ok,
    "/big": _big,
    "/chunked-big": _chunked_big,
    "/trickle": _trickle,
    "/slow": _slow,
    "/gzip": _gzip,
    "/missing": _missing,
    "/redirect": _redirect,
    "/loop": _loop,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-answer is what the cap and deadline tests do on purpose:
        not a server error to print. Anything else still prints its traceback."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def start_image_server(
    host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> tuple[ImageServer, Callable[[], None]]:
    """A running server on a free port, and the function that stops it."""
    log = ImageServer(host, 0, scheme="https" if tls else "http")
    server = _Server(host, _handler(log))
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: log.server_names.append(name)  # type: ignore[assignment,misc]
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    log.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return log, stop


@pytest.fixture
def image_server() -> Iterator[Callable[..., ImageServer]]:
    """`image_server(host="127.0.0.1", tls=None)` starts a server; all stop after the test."""
    stops: list[Callable[[], None]] = []

    def start(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> ImageServer:
        log, stop = start_image_server(host, tls)
        stops.append(stop)
        return log

    yield start
    for stop in stops:
        stop()
