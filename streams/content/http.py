"""http(s) image fetches that connect only to addresses the policy allows.

Built on httpcore (the transport under httpx) because it has a documented seam exactly where the
check must sit: a custom *network backend* is asked to open every TCP connection, for every
request and every redirect hop, with the URL's host name. `VettedBackend` resolves that name once
(in the fetcher's own thread pool), refuses the whole name if any of its addresses is refused
(a DNS answer that mixes public and private addresses is hostile), and connects to the vetted
numeric address itself — so there is no second lookup for DNS rebinding to exploit — while
httpcore keeps the URL's host name for the `Host` header, TLS SNI and certificate checks.

Redirects are followed here, not by the client: each hop is counted, its scheme re-checked, and
its connection goes through the same backend. Bodies are streamed against the byte cap and are
never decompressed (`Accept-Encoding: identity`; a gzip bomb stays a small, undecodable file).

Why not an SSRF package: the PyPI guards reviewed either resolve names through a public DNS
service (safehttpx), probe denied addresses with TCP connects before deciding and patch private
httpx internals (httpx-secure), or are requests-only and unmaintained (advocate). The rules
themselves come from the standard library's `ipaddress` (see `addresses.py`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from concurrent.futures import Executor
from typing import Any

import httpcore
import httpx
import structlog

from streams.content.addresses import IPAddress, Network, literal_address, refusal
from streams.content.reasons import ContentError

log = structlog.get_logger(__name__)

#: `resolve(host, port) -> addresses`: the system resolver by default; tests inject answers.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = [
    (b"Accept", b"image/*"),
    (b"Accept-Encoding", b"identity"),
    (b"User-Agent", b"pinclip-stream-fetch"),
]


class AddressRefused(Exception):
    """Raised inside the connection pool when a host resolves to an address the policy refuses."""

    def __init__(self, host: str, kind: str) -> None:
        super().__init__(f"{host}: {kind} address")
        self.host = host
        self.kind = kind


def system_resolver(pool: Executor) -> Resolver:
    """`getaddrinfo` in `pool` (never the loop's default executor: store writes live there)."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(
            pool, socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM
        )
        addresses = [literal_address(str(info[4][0])) for info in infos]
        return list(dict.fromkeys(a for a in addresses if a is not None))

    return resolve


class VettedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to vetted addresses of the requested host."""

    def __init__(
        self, resolve: Resolver, networks: Iterable[Network], hosts: Iterable[str]
    ) -> None:
        self._resolve = resolve
        self._networks = tuple(networks)
        self._hosts = frozenset(hosts)
        self._inner = httpcore.AnyIOBackend()

    async def vet(self, host: str, port: int) -> list[IPAddress]:
        literal = literal_address(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host}: no address")
        exempt = self._networks
        if host.lower().rstrip(".") in self._hosts:  # an allowed host: all its addresses
            exempt = exempt + tuple(_single(a) for a in addresses)
        for address in addresses:
            kind = refusal(address, exempt)
            if kind is not None:
                raise AddressRefused(host, kind)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, "unix_socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _single(address: IPAddress) -> Network:
    return ipaddress.ip_network(address)


def parse_http_url(uri: str) -> httpx.URL:
    """Parse and normalise (IDNA, percent-encoding); ContentError for anything malformed."""
    try:
        url = httpx.URL(uri)
        port = url.port
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise ContentError("unsupported_uri") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ContentError("unsupported_uri")
    if port is not None and not 0 < port < 65536:
        raise ContentError("unsupported_uri")
    return url


class HttpFetcher:
    """GET one image over http(s): vetted connections, counted redirects, a streamed byte cap."""

    def __init__(
        self,
        backend: VettedBackend,
        *,
        max_bytes: int,
        max_redirects: int,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or _default_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=backend,
        )

    async def get(self, uri: str, allowed_schemes: Iterable[str]) -> bytes:
        url = parse_http_url(uri)
        for _hop in range(self.max_redirects + 1):
            location = await self._get_once(url)
            if isinstance(location, bytes):
                return location
            url = _redirect_target(url, location, allowed_schemes)
        log.info("content_fetch_failed", host=url.host, cause="too_many_redirects")
        raise ContentError("unreachable")

    async def _get_once(self, url: httpx.URL) -> bytes | str:
        """The body, or the Location to go to next."""
        host_header = httpx.Request("GET", url).headers["Host"].encode("ascii")
        target = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        headers = [(b"Host", host_header), *_HEADERS]
        async with self._pool.stream("GET", target, headers=headers) as response:
            if response.status in _REDIRECTS:
                location = _header(response.headers, b"location")
                if location is None:
                    raise _unreachable(url, "redirect_without_location")
                return location
            if not 200 <= response.status < 300:
                raise _unreachable(url, f"http_{response.status}")
            declared = _header(response.headers, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise ContentError("too_large")
            return await read_capped(response.aiter_stream(), self.max_bytes)

    async def aclose(self) -> None:
        await self._pool.aclose()


async def read_capped(chunks: AsyncIterable[bytes], max_bytes: int) -> bytes:
    """Concatenate a byte stream, stopping with ContentError("too_large") past `max_bytes`.

    Public so other readers of untrusted bodies (API uploads) apply the same rule.
    """
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise ContentError("too_large")
    return bytes(data)


def _redirect_target(url: httpx.URL, location: str, allowed: Iterable[str]) -> httpx.URL:
    try:
        joined = url.join(location)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise _unreachable(url, "bad_redirect") from None
    if joined.scheme not in ("http", "https") or joined.scheme not in set(allowed):
        log.info("content_fetch_refused", host=url.host, cause="redirect_scheme")
        raise ContentError("forbidden")
    return parse_http_url(str(joined))


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's verified context (certifi roots), built once: loading the roots takes ~20 ms."""
    return httpx.create_ssl_context()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _unreachable(url: httpx.URL, cause: str) -> ContentError:
    log.info("content_fetch_failed", host=url.host, cause=cause)
    return ContentError("unreachable")
