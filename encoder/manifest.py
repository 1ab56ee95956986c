"""manifest.json: what a model directory contains and how to feed it. No torch.

The serving side trusts nothing else: preprocessing parameters, dimension and file hashes all
come from here, so a worker can verify a directory before swapping to it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
PIN_ONNX = "pin.onnx"
IMAGE_ONNX = "image.onnx"
TEXT_ONNX = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class PreprocessSpec:
    """Exactly the parameters ImagePreprocessor / TextPreprocessor need."""

    image_size: int
    mean: list[float]
    std: list[float]
    max_text_length: int
    max_image_bytes: int
    max_image_pixels: int
    max_text_chars: int


@dataclass
class Manifest:
    version: int
    dim: int
    opset: int
    created_at: str
    preprocess: PreprocessSpec
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    parent_version: int | None = None
    eval_summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        values = dict(data)
        values["preprocess"] = PreprocessSpec(**values["preprocess"])
        return cls(**values)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        return cls.from_dict(json.loads((Path(directory) / MANIFEST_FILE).read_text()))

    def verify(self, directory: str | Path) -> list[str]:
        """Files whose sha256 differs from the manifest (empty list: the directory is intact)."""
        root = Path(directory)
        return [
            name
            for name, digest in sorted(self.files.items())
            if not (root / name).is_file() or sha256_file(root / name) != digest
        ]


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:  # stdlib streaming digest: constant memory for any size
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_directory(
    directory: Path, skip: frozenset[str] = frozenset({MANIFEST_FILE})
) -> dict[str, str]:
    """sha256 of every file under `directory` (relative posix paths), manifest excluded."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in skip
    }
