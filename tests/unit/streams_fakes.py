"""In-memory stand-ins for the stores and the model, for unit tests of the stream's I/O code.

The stores keep rows in dicts and can fail like an outage (ConnectionError: transient) or
refuse a row (ValueError: deterministic); the encoder decodes images with the real
ImagePreprocessor and derives a deterministic vector per (pixels, version) instead of running a
model. Integration tests use the real services instead.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from encoder.preprocess import ImagePreprocessor

DIM = 8


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, format="PNG")
    return out.getvalue()


class HashEncoder:
    """Decodes with the real ImagePreprocessor (the worker's decode pool runs it) and derives a
    deterministic vector per (pixels, version) instead of running a model."""

    def __init__(self, directory: Path) -> None:
        self.version = json.loads((directory / "manifest.json").read_text())["version"]
        self.dim = DIM
        self.preprocess_key = ("unit", 16)

    def image_preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(16)

    async def embed_pixels(
        self, pixels: np.ndarray, titles: list[str], descriptions: list[str]
    ) -> np.ndarray:
        vectors = []
        for one in pixels:
            seed = hashlib.sha256(one.tobytes() + bytes([self.version])).digest()
            vectors.append(np.frombuffer(seed[:DIM], dtype=np.uint8).astype(np.float32) + 1.0)
        return np.stack(vectors)

    async def close(self) -> None:
        pass


class MemoryVectors:
    def __init__(self, failures: int = 0) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.failures = failures
        self.alias: int | None = None

    def live_version(self) -> int | None:
        return self.alias

    def ensure_version(self, version: int) -> str:
        self.rows.setdefault(version, {})
        return f"v{version}"

    def switch_alias(self, version: int) -> None:
        self.alias = version

    def upsert(self, version: int, pins: list[Any]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("milvus down")
        for pin in pins:
            if not np.all(np.isfinite(pin.pin)):
                raise ValueError("NaN")
            self.rows[version][pin.pin_id] = pin
        return len(pins)

    def close(self) -> None:
        pass


class MemoryGraph:
    def __init__(self) -> None:
        self.pins: dict[str, Any] = {}
        self.saves: set[tuple[str, str]] = set()

    def ensure_schema(self) -> None:
        pass

    def upsert_pins(self, pins: list[Any]) -> int:
        self.pins.update({p.pin_id: p for p in pins})
        return len(pins)

    def add_saves(self, saves: list[Any]) -> int:
        self.saves.update((s.pin_id, s.board_id) for s in saves)
        return len(saves)

    def write_batch(self, pins: list[Any], saves: list[Any] = ()) -> dict[str, list[str]]:  # type: ignore[assignment]
        self.upsert_pins(pins)
        self.add_saves(saves)
        return {p.pin_id: sorted(b for q, b in self.saves if q == p.pin_id) for p in pins}

    def close(self) -> None:
        pass
