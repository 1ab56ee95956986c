"""Image bytes for new pins: fetch by URI with size and time caps, and keep inline images.

Every fetch failure is a `ContentError` with a short `reason` (it becomes the dead letter's
reason). Inline images are written to a content store so that every pin has a URI the trainer's
backfill can load later with `load_image_bytes` — re-embedding never needs the original event.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

import fsspec
import httpx

from streams.events import MAX_INLINE_IMAGE_BYTES, NewPin, decode_inline_image

ContentReason = Literal["unreachable", "too_large", "timeout", "bad_base64", "unsupported_uri"]

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_TIMEOUT_S = 5.0


class ContentError(Exception):
    """A pin's image could not be obtained; `reason` is the machine-readable cause."""

    def __init__(self, reason: ContentReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: ContentReason = reason
        self.detail = detail


def _read_capped_fsspec(uri: str, max_bytes: int) -> bytes:
    try:
        with fsspec.open(uri, "rb") as handle:
            data: bytes = handle.read(max_bytes + 1)
    except (FileNotFoundError, PermissionError, IsADirectoryError, OSError) as exc:
        raise ContentError("unreachable", f"{type(exc).__name__}: {exc}") from exc
    except (ImportError, ValueError) as exc:  # e.g. s3 without s3fs installed
        raise ContentError("unsupported_uri", str(exc)) from exc
    if len(data) > max_bytes:
        raise ContentError("too_large", f"more than {max_bytes} bytes")
    return data


async def _read_capped_http(client: httpx.AsyncClient, uri: str, max_bytes: int) -> bytes:
    try:
        async with client.stream("GET", uri, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise ContentError("unreachable", f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ContentError("too_large", f"content-length {declared} > {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ContentError("too_large", f"more than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise ContentError("timeout", str(exc) or type(exc).__name__) from exc
    except httpx.HTTPError as exc:
        raise ContentError("unreachable", f"{type(exc).__name__}: {exc}") from exc


@dataclass
class ContentFetcher:
    """Fetches many images concurrently; one slow or broken URI never fails the others."""

    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrency: int = 32

    def __post_init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(self.max_concurrency)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def fetch_uri(self, uri: str) -> bytes:
        scheme = urlparse(uri).scheme
        async with self._limit:
            try:
                if scheme in ("http", "https"):
                    return await asyncio.wait_for(
                        _read_capped_http(self._http(), uri, self.max_bytes), self.timeout_s
                    )
                if scheme in ("file", "s3"):
                    return await asyncio.wait_for(
                        asyncio.to_thread(_read_capped_fsspec, uri, self.max_bytes), self.timeout_s
                    )
            except TimeoutError as exc:
                raise ContentError("timeout", f"no answer within {self.timeout_s}s") from exc
        raise ContentError("unsupported_uri", f"scheme {scheme!r}")

    async def fetch_pin_image(self, pin: NewPin) -> bytes:
        if pin.image_b64 is not None:
            return inline_image_bytes(pin.image_b64, min(self.max_bytes, MAX_INLINE_IMAGE_BYTES))
        assert pin.image_uri is not None  # guaranteed by NewPin's validator
        return await self.fetch_uri(pin.image_uri)

    async def fetch_many(self, pins: Sequence[NewPin]) -> list[bytes | ContentError]:
        """Same order as `pins`; each item is the bytes or the ContentError for that pin."""

        async def one(pin: NewPin) -> bytes | ContentError:
            try:
                return await self.fetch_pin_image(pin)
            except ContentError as exc:
                return exc

        return list(await asyncio.gather(*(one(pin) for pin in pins)))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def inline_image_bytes(image_b64: str, max_bytes: int = MAX_INLINE_IMAGE_BYTES) -> bytes:
    try:
        return decode_inline_image(image_b64, max_bytes)
    except OverflowError as exc:
        raise ContentError("too_large", str(exc)) from exc
    except ValueError as exc:
        raise ContentError("bad_base64", str(exc)) from exc


class ContentStore:
    """Content-addressed image store (any fsspec URL) for images that arrived inline.

    Paths are `<root>/<sha256[:2]>/<sha256>`: writing the same image twice (a replay) is a no-op,
    and the returned URI is stable, so Neo4j's `image_uri` stays valid across replays.
    """

    def __init__(self, root_url: str) -> None:
        self._fs, root = fsspec.core.url_to_fs(root_url)
        self._root = root.rstrip("/")
        self._fs.makedirs(self._root, exist_ok=True)

    def uri_for(self, digest: str) -> str:
        path = f"{self._root}/{digest[:2]}/{digest}"
        return str(self._fs.unstrip_protocol(path))

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = f"{self._root}/{digest[:2]}/{digest}"
        if not self._fs.exists(path):
            self._fs.makedirs(f"{self._root}/{digest[:2]}", exist_ok=True)
            tmp = f"{path}.tmp-{id(data)}"
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, path)
        return self.uri_for(digest)

    async def put_many(self, images: Sequence[bytes]) -> list[str]:
        return list(await asyncio.gather(*(asyncio.to_thread(self.put, data) for data in images)))


def load_image_bytes(
    image_uri: str, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bytes:
    """Load a stored pin's image by the URI kept in Neo4j (for backfills; synchronous).

    Raises ContentError like the worker's fetch does.
    """
    scheme = urlparse(image_uri).scheme
    if scheme in ("http", "https"):
        with httpx.Client(timeout=timeout_s) as client:
            try:
                response = client.get(image_uri, follow_redirects=True)
            except httpx.TimeoutException as exc:
                raise ContentError("timeout", str(exc)) from exc
            except httpx.HTTPError as exc:
                raise ContentError("unreachable", str(exc)) from exc
            if response.status_code >= 400:
                raise ContentError("unreachable", f"HTTP {response.status_code}")
            if len(response.content) > max_bytes:
                raise ContentError("too_large", f"more than {max_bytes} bytes")
            return response.content
    if scheme in ("file", "s3") or scheme == "":
        return _read_capped_fsspec(image_uri, max_bytes)
    raise ContentError("unsupported_uri", f"scheme {scheme!r}")


async def fetch_image_bytes(
    image_uri: str, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bytes:
    """Async variant of `load_image_bytes` for callers already in an event loop."""
    fetcher = ContentFetcher(max_bytes=max_bytes, timeout_s=timeout_s, max_concurrency=1)
    try:
        return await fetcher.fetch_uri(image_uri)
    finally:
        await fetcher.aclose()
