"""In-memory stand-ins for the PinWorker's stores and encoder (unit tests only; the same code
runs against real Kafka, Neo4j and Milvus in tests/integration and tests/e2e).

Each store call first asks its `Faults` whether to raise: tests inject outages (transient),
refused rows (deterministic) and bugs (fatal) exactly where the real drivers would raise them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from encoder.preprocess import ImagePreprocessor, ImageRejected
from streams.config import Topics, WorkerConfig
from streams.content import FetchPolicy
from streams.pipeline import RetryPolicy, SourceRecord
from streams.worker import PinWorker

DIM = 8
FAST_RETRY = RetryPolicy(base_s=0.001, max_s=0.01)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Faults:
    """Per-method queues of exceptions to raise (then calls succeed), and rules by argument."""

    def __init__(self) -> None:
        self.queued: dict[str, list[BaseException]] = defaultdict(list)
        self.rules: list[Callable[[str, Any], BaseException | None]] = []
        self.calls: dict[str, int] = defaultdict(int)

    def queue(self, method: str, *errors: BaseException) -> None:
        self.queued[method].extend(errors)

    def check(self, method: str, argument: Any = None) -> None:
        self.calls[method] += 1
        if self.queued[method]:
            raise self.queued[method].pop(0)
        for rule in self.rules:
            error = rule(method, argument)
            if error is not None:
                raise error


@dataclass(frozen=True)
class Embedding:
    version: int
    image: np.ndarray
    text: np.ndarray
    pin: np.ndarray


class HashEncoder:
    """Decodes the image for real — the stream's path decodes with `image_preprocessor()` (the
    real ImagePreprocessor) in its pool, `embed` with Pillow — and derives a deterministic
    vector per (content, version) instead of running a model."""

    faults = Faults()  # shared by every instance (the worker builds them through its loader)

    def __init__(self, directory: Path) -> None:
        self.version = json.loads((directory / "manifest.json").read_text())["version"]
        self.dim = DIM
        self.preprocess_key = ("unit", 16)

    def image_preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(16)

    async def embed_pixels(
        self, pixels: np.ndarray, titles: list[str], descriptions: list[str]
    ) -> np.ndarray:
        self.faults.check("embed", pixels)
        vectors = []
        for one in pixels:
            seed = hashlib.sha256(one.tobytes() + bytes([self.version])).digest()
            vectors.append(np.frombuffer(seed[:DIM], dtype=np.uint8).astype(np.float32) + 1.0)
        return np.stack(vectors)

    async def embed(self, content: Any) -> Embedding:
        self.faults.check("embed", content)
        try:
            Image.open(io.BytesIO(content.image_bytes)).load()
        except Exception as exc:
            raise ImageRejected("decode_error", str(exc)) from exc
        seed = hashlib.sha256(content.image_bytes + bytes([self.version])).digest()
        vector = np.frombuffer(seed[:DIM], dtype=np.uint8).astype(np.float32) + 1.0
        return Embedding(self.version, vector, vector, vector)

    async def close(self) -> None:
        pass


class MemoryVectors:
    def __init__(self, failures: int = 0) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.alias: int | None = None
        self.marks: dict[int, set[str]] = {}
        self.faults = Faults()
        self.faults.queue("upsert", *(ConnectionError("milvus down") for _ in range(failures)))

    def live_version(self) -> int | None:
        self.faults.check("live_version")
        return self.alias

    def ensure_version(self, version: int) -> str:
        self.faults.check("ensure_version", version)
        self.rows.setdefault(version, {})
        return f"v{version}"

    def switch_alias(self, version: int, expected_count: int | None = None) -> None:
        self.alias = version

    def upsert(self, version: int, pins: list[Any]) -> int:
        self.faults.check("upsert", pins)
        for pin in pins:
            if not np.all(np.isfinite(pin.pin)):
                raise ValueError("NaN")
        for pin in pins:
            self.rows[version][pin.pin_id] = pin
        return len(pins)

    def mark_writer(self, version: int, writer: str) -> None:
        self.faults.check("mark_writer", version)
        self.marks.setdefault(version, set()).add(writer)

    def close(self) -> None:
        pass


class MemoryGraph:
    def __init__(self) -> None:
        self.pins: dict[str, Any] = {}
        self.saves: set[tuple[str, str]] = set()
        self.faults = Faults()

    def ensure_schema(self) -> None:
        self.faults.check("ensure_schema")

    def upsert_pins(self, pins: list[Any]) -> int:
        self.faults.check("upsert_pins", pins)
        self.pins.update({p.pin_id: p for p in pins})
        return len(pins)

    def add_saves(self, saves: list[Any]) -> int:
        self.faults.check("add_saves", saves)
        self.saves.update((s.pin_id, s.board_id) for s in saves)
        return len(saves)

    def write_batch(self, pins: list[Any], saves: Any = ()) -> dict[str, list[str]]:
        """One "transaction": the pins, then the saves (each with its own fault point)."""
        if pins:
            self.upsert_pins(pins)
        if saves:
            self.add_saves(list(saves))
        return {p.pin_id: sorted(b for q, b in self.saves if q == p.pin_id) for p in pins}

    def close(self) -> None:
        pass


def registry(root: Path, versions: list[int]) -> Path:
    for v in versions:
        (root / f"v{v}").mkdir(parents=True, exist_ok=True)
        (root / f"v{v}" / "manifest.json").write_text(json.dumps({"version": v, "dim": DIM}))
    return root


def worker_config(tmp_path: Path, **overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "topics": Topics.with_prefix("unit"),
        "registry_url": str(registry(tmp_path / "registry", [1, 2])),
        "model_version": 1,
        "state_dir": tmp_path / "state",
        "metrics_port": None,
        "fetch": FetchPolicy(file_roots=(str(tmp_path),)),
        **overrides,
    }
    return WorkerConfig(**values)


async def make_worker(
    tmp_path: Path, vectors: MemoryVectors, graph: MemoryGraph, **overrides: Any
) -> PinWorker:
    HashEncoder.faults = Faults()
    worker = PinWorker(
        worker_config(tmp_path, **overrides),
        vector_store=vectors,
        graph_store=graph,
        encoder_loader=HashEncoder,
        retry=FAST_RETRY,
    )
    await worker.start()
    return worker


def pin_record(offset: int, pin_id: str, **fields: Any) -> SourceRecord:
    """A NewPin record; `fields` must include image_uri or image_b64 and may override any."""
    pin = {
        "schema_version": 1,
        "pin_id": pin_id,
        "board_id": "b1",
        "user_id": "u1",
        "title": "t",
        "created_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    return SourceRecord("unit.pins.created", 0, offset, json.dumps(pin).encode())
