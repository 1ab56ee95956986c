"""GET /pins/{id}/image: the pin's stored image, read through the content-fetch path.

The API never fetches a URI that a request names: only the `image_uri` the worker stored for a
pin, and only through `streams.content` — the one fetch path, with its scheme and address
policy, byte cap and deadline — so the endpoint cannot become a proxy to internal addresses.
Served bytes must sniff as an image format we accept; they go out with `nosniff` and a CSP that
forbids everything, so a stored file can never run as a page. Content-addressed images (the
worker's store: `<sha256[:2]>/<sha256>`) get a strong ETag from their name — a revalidation
costs no read — and a long max-age; any other URI could be re-pointed, so it gets a short one.
"""

from __future__ import annotations

import hashlib
import io
import re

from PIL import Image, UnidentifiedImageError
from starlette.responses import Response

from pinclip.api.config import ApiConfig
from pinclip.api.ports import ImageSource
from pinclip.api.problems import ApiProblem
from streams.content import ContentError, ContentFetcher, FetchPolicy

_CONTENT_ADDRESSED = re.compile(r"/([0-9a-f]{2})/(\1[0-9a-f]{62})$")
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}


class ContentImageSource:
    """ImageSource over the shared content path: one `streams.content.ContentFetcher` under a
    `FetchPolicy` (schemes, file roots, address policy, byte cap, total deadline)."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._fetcher: ContentFetcher | None = None

    async def read(self, uri: str) -> bytes:
        if self._fetcher is None:  # created on the serving loop, closed by the app's lifespan
            self._fetcher = ContentFetcher(self.policy)
        return await self._fetcher.fetch_uri(uri)

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None


def content_digest(uri: str) -> str | None:
    """The sha256 a content-addressed URI is named by, else None."""
    match = _CONTENT_ADDRESSED.search(uri)
    return match.group(2) if match else None


def media_type(data: bytes) -> str:
    """The image's media type from its header; the stored bytes are not trusted to be one."""
    try:
        with Image.open(io.BytesIO(data), formats=sorted(MEDIA_TYPES)) as image:
            return MEDIA_TYPES[str(image.format)]
    except (UnidentifiedImageError, OSError, ValueError, KeyError) as exc:
        raise ApiProblem("image-unavailable", "the stored file is not an image") from exc


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return etag in candidates


def _cache_headers(etag: str, max_age: int, private: bool) -> dict[str, str]:
    scope = "private" if private else "public"
    return {
        "ETag": etag,
        "Cache-Control": f"{scope}, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


async def serve_image(
    uri: str, source: ImageSource, config: ApiConfig, if_none_match: str | None
) -> Response:
    digest = content_digest(uri)
    max_age = config.image_max_age_s if digest else config.mutable_image_max_age_s
    private = config.auth_enabled
    if digest is not None:
        etag = f'"{digest}"'
        if _etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=_cache_headers(etag, max_age, private))
    try:
        data = await source.read(uri)
    except ContentError as exc:
        # Coarse on purpose: no status codes or addresses (no port-scan oracle).
        raise ApiProblem(
            "image-unavailable", f"the image could not be read ({exc.reason})"
        ) from exc
    etag = f'"{digest or hashlib.sha256(data).hexdigest()}"'
    headers = _cache_headers(etag, max_age, private)
    if _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=media_type(data), headers=headers)
