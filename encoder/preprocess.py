"""Image bytes and pin text → the exact arrays the model consumes, for training and serving alike.

No torch: the ONNX serving path and the torch training path call these same functions on the
same bytes, so identical inputs give identical arrays. Anything we refuse raises ImageRejected
with a stable `reason` string that the stream can put on the dead-letter topic.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tokenizers import Tokenizer

from encoder.config import CLIP_MEAN, CLIP_STD

# Formats a pin image may arrive in. Anything else (PDF, TIFF, PSD, ICO, ...) is refused: each
# extra decoder is attack surface, and none of them is a pin image format.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})
PIN_TEXT_SEPARATOR = " | "


class ImageRejected(ValueError):
    """An image we will not embed. `reason` is machine-readable and stable.

    Reasons: empty, too_large, unsupported_format, too_many_pixels, truncated, decode_error.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ImagePreprocessor:
    """Decode → EXIF-orient → RGB (alpha on white) → resize short side → centre crop → normalise."""

    def __init__(
        self,
        size: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        max_bytes: int = 20 * 1024 * 1024,
        max_pixels: int = 40_000_000,
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        # Folded into one multiply-add per pixel: (x/255 - mean)/std = x*scale + shift.
        mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        std_arr = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self._scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._shift = (-mean_arr / std_arr).astype(np.float32)

    def load(self, data: bytes) -> np.ndarray:
        """Image file bytes → float32 [3, size, size]; raises ImageRejected."""
        with self._open(data) as image:
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
        """A decoded RGB image → normalised float32 [3, size, size] (resize + centre crop)."""
        width, height = image.size
        scale = self.size / min(width, height)
        new_w = max(self.size, round(width * scale))
        new_h = max(self.size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left = (new_w - self.size) // 2
        top = (new_h - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        return np.ascontiguousarray(pixels * self._scale + self._shift, dtype=np.float32)

    def _open(self, data: bytes) -> Image.Image:
        """Reads only the header: size checks happen before any pixel is decoded."""
        if not data:
            raise ImageRejected("empty", "no bytes")
        if len(data) > self.max_bytes:
            raise ImageRejected("too_large", f"{len(data)} bytes > {self.max_bytes}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("too_many_pixels", str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected("unsupported_format", "not a JPEG/PNG/WEBP/GIF/BMP") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(_decode_failure(exc), str(exc)) from exc
        width, height = image.size
        if width * height > self.max_pixels:
            image.close()
            raise ImageRejected("too_many_pixels", f"{width}x{height} > {self.max_pixels} pixels")
        if width < 1 or height < 1:
            image.close()
            raise ImageRejected("decode_error", f"degenerate size {width}x{height}")
        return image

    def _decode(self, image: Image.Image) -> Image.Image:
        if image.format == "JPEG":
            # Let libjpeg decode at a reduced scale (still >= our size): same result every call,
            # much cheaper for large photos.
            image.draft("RGB", (self.size, self.size))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(_decode_failure(exc), str(exc)) from exc
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception as exc:  # corrupt EXIF blocks raise assorted errors
            raise ImageRejected("decode_error", f"exif: {exc}") from exc
        return _to_rgb(oriented)


def _decode_failure(exc: Exception) -> str:
    """Pillow signals a cut-off file only through its message ("truncated", "Truncated ...")."""
    return "truncated" if "truncat" in str(exc).lower() else "decode_error"


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
