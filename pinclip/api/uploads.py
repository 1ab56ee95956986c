"""Image uploads: raw body or multipart/form-data, capped before and while they stream.

The cap is checked against Content-Length first (a declared 1 GB upload is refused before one
byte is read), then counted while the body streams (a chunked or lying client is cut off at the
cap). Multipart is parsed by python-multipart — the streaming parser Starlette itself uses —
from the already-capped bytes; the first file part is the image.
"""

from __future__ import annotations

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from pinclip.api.problems import ApiProblem

RAW_TYPES = ("image/", "application/octet-stream")
HOW_TO_SEND = (
    "send the image as the raw body (curl --data-binary @pin.jpg -H 'Content-Type: image/jpeg') "
    "or as a multipart form field named 'image' (curl -F image=@pin.jpg)"
)
# Multipart adds boundaries and part headers around the image: allow for them.
MULTIPART_OVERHEAD = 16 * 1024


async def read_capped(request: Request, cap: int, limit: int | None = None) -> bytes:
    """The body, at most `cap` bytes; `limit` is the cap a 413 reports (the image's, when `cap`
    allows for multipart's overhead around it)."""
    limit = cap if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        raise ApiProblem(
            "upload-too-large", f"Content-Length {int(declared)} > {cap} bytes", limit=limit
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiProblem("upload-too-large", f"more than {cap} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def first_file_part(body: bytes, boundary: bytes) -> bytes | None:
    """The bytes of the first part that has a filename (else of a part named 'image')."""
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own MultipartParseError and friends
        raise ApiProblem("invalid-request", f"malformed multipart body: {exc}") from exc
    named: bytes | None = None
    for headers, data in parts:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        if b"filename" in options:
            return bytes(data)
        if options.get(b"name") == b"image" and named is None:
            named = bytes(data)
    return named


async def read_image_upload(request: Request, cap: int) -> bytes:
    """The uploaded image bytes, or an ApiProblem that says how to send one."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    media = content_type.decode("latin-1").lower()
    if media == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiProblem("invalid-request", "multipart body without a boundary")
        body = await read_capped(request, cap + MULTIPART_OVERHEAD, limit=cap)
        image = first_file_part(body, boundary)
        if image is None:
            raise ApiProblem("empty-upload", f"no file part in the form; {HOW_TO_SEND}")
        if len(image) > cap:
            raise ApiProblem("upload-too-large", f"more than {cap} bytes", limit=cap)
    elif not media or media.startswith(RAW_TYPES):
        image = await read_capped(request, cap)
    else:
        raise ApiProblem("unsupported-media-type", f"Content-Type {media!r}: {HOW_TO_SEND}")
    if not image:
        raise ApiProblem("empty-upload", HOW_TO_SEND)
    return image
