"""Image bytes and pin text → the exact arrays the model consumes, for training and serving alike.

No torch: the ONNX serving path and the torch training path call these same functions on the
same bytes, so identical inputs give identical arrays. Anything we refuse raises ImageRejected
with a stable `reason` string that the stream can put on the dead-letter topic.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tokenizers import Tokenizer

from encoder.config import CLIP_MEAN, CLIP_STD

# Formats a pin image may arrive in. Anything else (PDF, TIFF, PSD, ICO, ...) is refused: each
# extra decoder is attack surface, and none of them is a pin image format.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
PIN_TEXT_SEPARATOR = " | "
#: Longest side / shortest side accepted. Tall pins run to ~1:3, long infographics to ~1:10.
DEFAULT_MAX_ASPECT_RATIO = 20.0
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageRejected(ValueError):
    """An image we will not embed. `reason` is machine-readable and stable.

    Reasons: empty, too_large (bytes), unsupported_format, too_many_pixels, bad_aspect_ratio,
    truncated, decode_error (corrupt data: any decoder error), resource_limit (decoding ran into
    a memory or size limit: MemoryError, OverflowError).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ImagePreprocessor:
    """Decode → EXIF-orient → centre square crop → RGB (alpha on white) → resize → normalise.

    Hostile images are bounded before any pixel is decoded: bytes, pixels (from the header) and
    aspect ratio. The centre crop happens *before* the resize, so the resize never produces more
    than `size`² pixels whatever the input's shape (resizing first turned a 4,000,000 x 10 PNG
    into a ~20-gigapixel image). Every way a decoder can fail becomes an `ImageRejected`.
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        max_bytes: int = 20 * 1024 * 1024,
        max_pixels: int = 40_000_000,
        max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_aspect_ratio = max_aspect_ratio
        # Folded into one multiply-add per pixel: (x/255 - mean)/std = x*scale + shift.
        mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        std_arr = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self._scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._shift = (-mean_arr / std_arr).astype(np.float32)

    def load(self, data: bytes) -> np.ndarray:
        """Image file bytes → float32 [3, size, size]; raises ImageRejected (nothing else)."""
        with _as_rejection(), self._open(data) as image:
            return self.to_array(self._decode(image))

    def load_many(self, items: Sequence[bytes]) -> list[np.ndarray | ImageRejected]:
        """Per-item results: one bad image does not spoil the batch."""
        out: list[np.ndarray | ImageRejected] = []
        for data in items:
            try:
                out.append(self.load(data))
            except ImageRejected as exc:
                out.append(exc)
        return out

    def to_array(self, image: Image.Image) -> np.ndarray:
        """A decoded image → normalised float32 [3, size, size] (centre crop, then resize)."""
        width, height = image.size
        side = min(width, height)
        if width != height:
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        image = _to_rgb(image)
        if side != self.size:
            # reducing_gap: a large downscale first shrinks by an integer factor (box filter),
            # then resamples — ~10x faster on a 40-megapixel image, and identical output when
            # the scale is under 6x (the ordinary 500-1000 px pin image).
            image = image.resize((self.size, self.size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        return np.ascontiguousarray(pixels * self._scale + self._shift, dtype=np.float32)

    def _open(self, data: bytes) -> Image.Image:
        """Reads only the header: size and shape checks happen before any pixel is decoded."""
        if not data:
            raise ImageRejected("empty", "no bytes")
        if len(data) > self.max_bytes:
            raise ImageRejected("too_large", f"{len(data)} bytes > {self.max_bytes}")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
        try:
            self._check_shape(*image.size)
        except ImageRejected:
            image.close()
            raise
        return image

    def _check_shape(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ImageRejected("decode_error", f"degenerate size {width}x{height}")
        if width * height > self.max_pixels:
            raise ImageRejected("too_many_pixels", f"{width}x{height} > {self.max_pixels} pixels")
        if max(width, height) > self.max_aspect_ratio * min(width, height):
            limit = f"1:{self.max_aspect_ratio:g}"
            raise ImageRejected("bad_aspect_ratio", f"{width}x{height} beyond {limit}")

    def _decode(self, image: Image.Image) -> Image.Image:
        """Pixels of the first frame (an animation's poster frame), upright per its EXIF."""
        if image.format == "JPEG":
            # Let libjpeg decode at a reduced scale (still >= our size on both sides): same
            # result every call, much cheaper for large photos.
            image.draft("RGB", (self.size, self.size))
        image.load()
        method = _ORIENTATIONS.get(image.getexif().get(0x0112, 1))
        return image.transpose(method) if method is not None else image


@contextmanager
def _as_rejection() -> Iterator[None]:
    """Every failure of a decoder on hostile bytes → ImageRejected with a stable reason.

    Pillow's plugins raise whatever their parsers raise (OSError, SyntaxError, ValueError,
    struct.error, zlib.error, EOFError, IndexError, KeyError, TypeError ...), and a cut-off file
    is recognisable only by its message. Catching broadly is deliberate: this is the boundary
    where untrusted bytes meet C decoders, and a hostile image must never crash the caller.
    """
    try:
        yield
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except (MemoryError, OverflowError) as exc:
        raise ImageRejected("resource_limit", type(exc).__name__) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("unsupported_format", "not a JPEG/PNG/WEBP/GIF/BMP") from exc
    except EOFError as exc:
        raise ImageRejected("truncated", str(exc) or "end of file") from exc
    except Exception as exc:
        reason = "truncated" if "truncat" in str(exc).lower() else "decode_error"
        raise ImageRejected(reason, f"{type(exc).__name__}: {exc}"[:200]) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Transparent pixels become white (how pins are displayed), then drop alpha; 16-bit
    greyscale is scaled to 8 bits (Pillow would clip it)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def pin_text(title: str, description: str) -> str:
    """How a pin's title and description become one text: title first, so truncation cuts the
    description, never the title."""
    title, description = title.strip(), description.strip()
    if title and description:
        return f"{title}{PIN_TEXT_SEPARATOR}{description}"
    return title or description


class TextPreprocessor:
    """Texts → (input_ids, attention_mask) int64 [B, L], L <= max_length, padded to the longest."""

    def __init__(self, tokenizer_json: str | Path, max_length: int, max_chars: int = 8192) -> None:
        source = str(tokenizer_json)
        if source.lstrip().startswith("{"):
            self.tokenizer = Tokenizer.from_str(source)
        else:
            self.tokenizer = Tokenizer.from_file(source)
        self.max_length = max_length
        # Bounds tokenizer work on hostile input (a megabyte "description").
        self.max_chars = max_chars
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad_id is None else pad_id
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            empty = np.zeros((0, 1), dtype=np.int64)
            return empty, empty.copy()
        clipped = [text[: self.max_chars] for text in texts]
        encodings = self.tokenizer.encode_batch(clipped)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def encode_pins(
        self, titles: Sequence[str], descriptions: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The one way pin text is tokenized, in training and in serving."""
        return self.encode([pin_text(t, d) for t, d in zip(titles, descriptions, strict=True)])
