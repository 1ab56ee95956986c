"""Preprocessing on real image files made with Pillow, and on real tokenizers."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoder.config import CLIP_MEAN, CLIP_STD
from encoder.preprocess import ImagePreprocessor, ImageRejected, TextPreprocessor, pin_text
from encoder.tokenizer import build_char_tokenizer


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height with a tiny compressed body: a small file
    that would expand to gigabytes — the shape of a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


PRE = ImagePreprocessor(size=32, max_bytes=2_000_000, max_pixels=4_000_000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_accepted_formats_give_normalised_chw_float32(fmt: str) -> None:
    array = PRE.load(_encode(_noise(80, 50), fmt))
    assert array.shape == (3, 32, 32)
    assert array.dtype == np.float32
    low = (0 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    high = (1 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    assert np.all(array.min(axis=(1, 2)) >= low - 1e-5)
    assert np.all(array.max(axis=(1, 2)) <= high + 1e-5)


def test_solid_colour_maps_to_its_normalised_value() -> None:
    array = PRE.load(_encode(Image.new("RGB", (100, 40), (255, 0, 128)), "PNG"))
    expected = (np.array([255, 0, 128]) / 255.0 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    np.testing.assert_allclose(array[:, 16, 16], expected, atol=1e-5)


def test_centre_crop_keeps_the_middle_of_a_wide_image() -> None:
    image = Image.new("RGB", (300, 100), (0, 0, 255))
    image.paste((255, 0, 0), (100, 0, 200, 100))  # red middle third
    array = PRE.load(_encode(image, "PNG"))
    red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert np.all(np.abs(array[0, :, 2:30] - red) < 1e-3)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (64, 32), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 32, 32))  # white on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated = ImagePreprocessor(size=16).load(_encode(image, "PNG", exif=exif.tobytes()))
    # Displayed upright the white half is on top: top rows bright, bottom rows dark.
    assert rotated[0, :4].mean() > 1.0 > rotated[0, -4:].mean()


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    array = PRE.load(_encode(image, "PNG"))
    white = (1.0 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    np.testing.assert_allclose(array[:, 10, 10], white, atol=1e-5)


def test_sixteen_bit_greyscale_matches_its_eight_bit_version() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    sixteen = PRE.load(_encode(Image.fromarray(ramp), "PNG"))
    eight = PRE.load(_encode(Image.fromarray((ramp // 256).astype(np.uint8)), "PNG"))
    np.testing.assert_allclose(sixteen, eight, atol=0.05)
    assert sixteen.max() - sixteen.min() > 3  # a real ramp, not clipped to white


def test_same_bytes_give_identical_arrays() -> None:
    data = _encode(_noise(123, 77, seed=3), "JPEG", quality=85)
    assert np.array_equal(PRE.load(data), PRE.load(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "unsupported_format"),
        (_encode(_noise(20, 20), "TIFF"), "unsupported_format"),
        (_encode(_noise(20, 20), "PDF"), "unsupported_format"),
        (_png_header_only(100_000, 100_000), "too_many_pixels"),  # Pillow's own bomb guard
        (_png_header_only(3_000, 3_000), "too_many_pixels"),  # our lower max_pixels
    ],
)
def test_rejections_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected) as info:
        PRE.load(data)
    assert info.value.reason == reason


def test_too_many_bytes_is_refused_before_decoding() -> None:
    small = ImagePreprocessor(size=32, max_bytes=1000)
    with pytest.raises(ImageRejected) as info:
        small.load(_encode(_noise(200, 200), "PNG"))
    assert info.value.reason == "too_large"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, 0.02])  # cut in the pixel data / inside the headers
def test_truncated_files_are_rejected(fmt: str, keep: float) -> None:
    data = _encode(_noise(200, 200), fmt)
    with pytest.raises(ImageRejected) as info:
        PRE.load(data[: int(len(data) * keep)])
    assert info.value.reason == "truncated"


def test_load_many_keeps_errors_per_item() -> None:
    good = _encode(_noise(40, 40), "PNG")
    results = PRE.load_many([good, b"junk", good])
    assert isinstance(results[0], np.ndarray)
    assert isinstance(results[1], ImageRejected) and results[1].reason == "unsupported_format"
    assert isinstance(results[2], np.ndarray)


@pytest.fixture(scope="module")
def text_pre() -> TextPreprocessor:
    return TextPreprocessor(build_char_tokenizer().to_str(), max_length=16, max_chars=1000)


def test_texts_pad_to_the_longest_with_a_mask(text_pre: TextPreprocessor) -> None:
    ids, mask = text_pre.encode(["ab", "abcdef"])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.shape == mask.shape == (2, 8)  # [CLS] + 6 chars + [SEP]
    assert mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert ids[0, 4:].tolist() == [text_pre.pad_id] * 4


def test_huge_text_is_truncated_to_max_length(text_pre: TextPreprocessor) -> None:
    ids, mask = text_pre.encode(["word " * 2_000_000])
    assert ids.shape == (1, 16)
    assert mask.sum() == 16


def test_pin_text_puts_the_title_first_so_truncation_cuts_the_description(
    text_pre: TextPreprocessor,
) -> None:
    assert pin_text(" Title ", " desc ") == "Title | desc"
    assert pin_text("", "only description") == "only description"
    ids, _ = text_pre.encode_pins(["title"], ["x" * 500])
    first = text_pre.tokenizer.decode(ids[0].tolist()).replace(" ", "").replace("##", "")
    assert first.startswith("title|xxx")


def test_tokenizer_file_path_and_string_agree(tmp_path, text_pre: TextPreprocessor) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(build_char_tokenizer().to_str())
    from_file = TextPreprocessor(path, max_length=16)
    for a, b in zip(from_file.encode(["same text"]), text_pre.encode(["same text"]), strict=True):
        assert np.array_equal(a, b)


# --- regressions (issue 9): hostile shapes and decoder failure modes ---------------------------


def _zero_png(width: int, height: int) -> bytes:
    """A *valid* all-black PNG of any shape: the body compresses ~1000x, so it stays small."""
    raw = (b"\x00" + b"\x00" * (3 * width)) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.mark.parametrize(("width", "height"), [(1_000_000, 1), (1, 1_000_000), (40_000, 100)])
def test_extreme_aspect_ratios_are_rejected_before_decoding(width: int, height: int) -> None:
    """Resize-before-crop turned 1,000,000 x 1 into a 224-million x 224 resize (GBs, seconds)."""
    with pytest.raises(ImageRejected) as info:
        ImagePreprocessor(size=224).load(_zero_png(width, height))
    assert info.value.reason == "bad_aspect_ratio"


def test_a_long_image_within_the_limit_is_cropped_before_it_is_resized() -> None:
    """1:20 is accepted; only the centre square is ever resized (the rest never allocated)."""
    image = Image.new("RGB", (2_000, 100), (0, 0, 255))
    image.paste((255, 0, 0), (950, 0, 1050, 100))  # red centre square
    array = ImagePreprocessor(size=32).load(_encode(image, "PNG"))
    red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert np.all(np.abs(array[0] - red) < 1e-3)


def test_running_out_of_memory_while_decoding_is_a_rejection(tmp_path: Path) -> None:
    """A real MemoryError (address space capped just above what is in use, in a child process):
    it used to escape `load` and take the batch with it."""
    path = tmp_path / "big.png"
    path.write_bytes(_zero_png(4_000, 4_000))
    code = (
        "import resource, sys\n"
        "from encoder.preprocess import ImagePreprocessor, ImageRejected\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "vms = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vms + 48 * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    ImagePreprocessor(224).load(data)\n"
        "    print('array')\n"
        "except ImageRejected as exc:\n"
        "    print(exc.reason)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert done.stdout.strip() == "resource_limit", done.stderr[-2000:]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animations_use_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in [(255, 0, 0), (0, 0, 255)] * 3]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=10)
    array = PRE.load(data)
    red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert abs(float(array[0].mean()) - red) < 0.05


@pytest.mark.parametrize(
    "image",
    [
        Image.new("CMYK", (40, 30), (0, 255, 255, 0)),  # JPEG CMYK
        Image.new("P", (40, 30), 3),  # palette
        Image.new("1", (40, 30), 1),
        Image.new("LA", (40, 30), (10, 0)),
    ],
    ids=["cmyk", "palette", "bilevel", "grey-alpha"],
)
def test_every_colour_mode_becomes_rgb(image: Image.Image) -> None:
    fmt = "JPEG" if image.mode == "CMYK" else "PNG"
    array = PRE.load(_encode(image, fmt))
    assert array.shape == (3, 32, 32) and np.isfinite(array).all()


def test_palette_tricks_are_decoded_or_rejected_never_raised() -> None:
    """A one-colour palette indexed up to 255, and a transparency table longer than it."""
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 3, 0, 0, 0)
    body = zlib.compress((b"\x00" + bytes(range(248, 256))) * 8)
    base = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", b"\xff\x00\x00")
    tail = _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    for extra in (b"", _chunk(b"tRNS", b"\x00" * 300)):
        try:
            array = PRE.load(base + extra + tail)
        except ImageRejected as exc:
            assert exc.reason in ("decode_error", "truncated")
        else:
            assert array.shape == (3, 32, 32) and np.isfinite(array).all()
