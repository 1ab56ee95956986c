"""Property-based fuzzing of the image preprocessor: whatever the bytes, `load` returns a finite
float32 [3, S, S] array or raises ImageRejected — never another exception, never an allocation
beyond the caps. Deterministic (derandomized, no example database) so CI cannot flake.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from encoder.preprocess import ImagePreprocessor, ImageRejected

SIZE = 16
PRE = ImagePreprocessor(size=SIZE, max_bytes=200_000, max_pixels=1_000_000, max_aspect_ratio=8)
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REASONS = {
    "empty", "too_large", "unsupported_format", "too_many_pixels", "bad_aspect_ratio",
    "truncated", "decode_error", "resource_limit",
}  # fmt: skip
# (mode, formats that can store it)
MODES = {
    "1": ("PNG", "GIF", "BMP"),
    "L": ("PNG", "JPEG", "GIF", "BMP", "WEBP"),
    "LA": ("PNG",),
    "P": ("PNG", "GIF", "BMP"),
    "RGB": ("PNG", "JPEG", "GIF", "BMP", "WEBP"),
    "RGBA": ("PNG", "WEBP", "GIF"),
    "CMYK": ("JPEG",),
    "I;16": ("PNG",),
}


def loads_or_rejects(data: bytes) -> np.ndarray | ImageRejected:
    """The property every input must satisfy; returns what happened for further checks."""
    try:
        array = PRE.load(data)
    except ImageRejected as exc:
        assert exc.reason in REASONS, exc.reason
        return exc
    assert array.shape == (3, SIZE, SIZE) and array.dtype == np.float32
    assert np.isfinite(array).all()
    return array


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """Real encoded images: any mode/format pair, size, EXIF orientation, animation."""
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    width, height = draw(st.integers(1, 120)), draw(st.integers(1, 120))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    image = Image.new(mode, (width, height))
    noise = Image.frombytes("L", (width, height), rng.integers(0, 256, width * height, np.uint8))
    image.paste(noise.convert(mode), (0, 0))
    kwargs: dict[str, object] = {}
    if fmt in ("PNG", "JPEG", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65535]))
        kwargs["exif"] = exif.tobytes()
    if fmt == "GIF" and draw(st.booleans()):
        frames = [image.copy() for _ in range(draw(st.integers(1, 4)))]
        kwargs.update(save_all=True, append_images=frames, duration=10)
    if mode == "P" and fmt == "PNG" and draw(st.booleans()):
        kwargs["transparency"] = draw(st.integers(0, 255))
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


@FUZZ
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_are_an_array_or_a_rejection(data: bytes) -> None:
    loads_or_rejects(data)


@FUZZ
@given(images())
def test_valid_images_of_every_mode_and_format_load_deterministically(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
    result = loads_or_rejects(data)
    if max(width, height) > 8 * min(width, height):
        assert isinstance(result, ImageRejected) and result.reason == "bad_aspect_ratio"
        return
    assert isinstance(result, np.ndarray), result
    assert np.array_equal(result, PRE.load(data))


@FUZZ
@given(
    images(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.floats(0.0, 1.0),
)
def test_corrupted_and_truncated_images_are_an_array_or_a_rejection(
    data: bytes, flips: list[tuple[int, int]], keep: float
) -> None:
    mutated = bytearray(data)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    loads_or_rejects(bytes(mutated))
    loads_or_rejects(data[: int(len(data) * keep)])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@FUZZ
@given(
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.sampled_from([(1, 0), (8, 0), (16, 0), (8, 2), (16, 2), (8, 3), (8, 4), (8, 6), (16, 6)]),
    st.binary(max_size=64),
    st.booleans(),
)
def test_png_headers_claiming_any_size_never_allocate_beyond_the_cap(
    width: int, height: int, depth_colour: tuple[int, int], palette: bytes, with_plte: bool
) -> None:
    """Decompression-bomb shapes: a tiny file whose header asks for up to 2^62 pixels, any bit
    depth and colour type, palettes of any length. Rejected from the header, or decoded within
    the pixel cap (the body is tiny, so: truncated)."""
    depth, colour = depth_colour
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(b"\x00" * 256)
    plte = _chunk(b"PLTE", palette) if with_plte else b""
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + plte + _chunk(b"IDAT", body)
    result = loads_or_rejects(data + _chunk(b"IEND", b""))
    if width * height > PRE.max_pixels:
        assert isinstance(result, ImageRejected)
        assert result.reason in ("too_many_pixels", "decode_error", "unsupported_format")


@settings(FUZZ, max_examples=40)
@given(st.integers(1, 100_000), st.integers(1, 100_000))
def test_any_shape_within_the_pixel_cap_is_bounded(width: int, height: int) -> None:
    """Valid (all-black) PNGs of every shape the pixel cap admits, up to 1:100,000: an array
    when the aspect ratio is within the limit, a rejection from the header otherwise."""
    if width * height > PRE.max_pixels:
        height = max(1, PRE.max_pixels // width)
    raw = (b"\x00" + b"\x00" * (3 * width)) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    data += _chunk(b"IDAT", zlib.compress(raw, 1)) + _chunk(b"IEND", b"")
    result = loads_or_rejects(data)
    if max(width, height) > 8 * min(width, height):
        assert isinstance(result, ImageRejected) and result.reason == "bad_aspect_ratio"
    else:
        assert isinstance(result, np.ndarray)
