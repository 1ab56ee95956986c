"""The offline dataset format: a directory any producer can write and the trainer can read.

Layout (format version 1)::

    <dir>/dataset.json   {"format": "pinclip-dataset", "format_version": 1, "name": ..., ...}
    <dir>/pins.jsonl     {"pin_id": str, "title": str, "description": str, "image": str,
                          "group": str (optional)}
    <dir>/saves.jsonl    {"pin_id": str, "board_id": str, "user_id": str | null, "ts": float | null}

`image` is a URI (file://, s3://, http(s)://, anything fsspec opens) or a path relative to the
dataset directory. `group` names a near-duplicate group (the same concept drawn twice, skin-tone
variants, one icon in several styles): the cold-start split holds a group out whole, so no
near-copy of a query is among the candidates. Pins without it form a group of their own.
Unknown keys are ignored so the format can grow without breaking readers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fsspec

FORMAT_NAME = "pinclip-dataset"
FORMAT_VERSION = 1


class DatasetFormatError(ValueError):
    """The directory is not a dataset this reader understands."""


@dataclass(frozen=True)
class PinRecord:
    pin_id: str
    title: str
    description: str
    image: str
    group: str = ""  # near-duplicate group; "" = a group of its own


@dataclass(frozen=True)
class SaveRecord:
    pin_id: str
    board_id: str
    user_id: str | None = None
    ts: float | None = None


@dataclass
class Dataset:
    """Pins and their board saves, plus where relative image paths are resolved from."""

    root: str
    pins: list[PinRecord]
    saves: list[SaveRecord]
    meta: dict[str, Any] = field(default_factory=dict)

    def image_url(self, pin: PinRecord) -> str:
        """Absolute URL of a pin's image: URIs stay as they are, relative paths join the root."""
        if "://" in pin.image or pin.image.startswith("/"):
            return pin.image
        return f"{self.root.rstrip('/')}/{pin.image}"

    def read_image_bytes(self, pin: PinRecord) -> bytes:
        with fsspec.open(self.image_url(pin), "rb") as f:
            data: bytes = f.read()
        return data

    def boards_of(self) -> dict[str, set[str]]:
        """pin_id -> board ids it is saved to (pins without saves are absent)."""
        boards: dict[str, set[str]] = {}
        for save in self.saves:
            boards.setdefault(save.pin_id, set()).add(save.board_id)
        return boards


def _read_jsonl(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[dict[str, Any]]:
    with fs.open(path, "r", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{path}:{line_no}: {exc}") from exc


def read_dataset(url: str | Path) -> Dataset:
    """Read any directory in the format above (local path or fsspec URL)."""
    url = str(url)
    fs, root = fsspec.core.url_to_fs(url)
    meta_path = f"{root.rstrip('/')}/dataset.json"
    if not fs.exists(meta_path):
        raise DatasetFormatError(f"{url}: no dataset.json")
    with fs.open(meta_path, "r", encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT_NAME:
        raise DatasetFormatError(f"{url}: format is {meta.get('format')!r}, not {FORMAT_NAME!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise DatasetFormatError(
            f"{url}: format_version {meta.get('format_version')} is newer than {FORMAT_VERSION}"
        )
    pins = []
    for row in _read_jsonl(fs, f"{root.rstrip('/')}/pins.jsonl"):
        try:
            pins.append(
                PinRecord(
                    pin_id=str(row["pin_id"]),
                    title=str(row.get("title") or ""),
                    description=str(row.get("description") or ""),
                    image=str(row["image"]),
                    group=str(row.get("group") or ""),
                )
            )
        except KeyError as exc:
            raise DatasetFormatError(f"{url}/pins.jsonl: missing {exc}") from exc
    saves = []
    for row in _read_jsonl(fs, f"{root.rstrip('/')}/saves.jsonl"):
        try:
            ts = row.get("ts")
            saves.append(
                SaveRecord(
                    pin_id=str(row["pin_id"]),
                    board_id=str(row["board_id"]),
                    user_id=None if row.get("user_id") is None else str(row["user_id"]),
                    ts=None if ts is None else float(ts),
                )
            )
        except KeyError as exc:
            raise DatasetFormatError(f"{url}/saves.jsonl: missing {exc}") from exc
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    full_root = root if protocol in ("file", "local") else f"{protocol}://{root}"
    return Dataset(root=full_root, pins=pins, saves=saves, meta=meta)


def write_dataset(
    url: str | Path,
    pins: Iterable[PinRecord],
    saves: Iterable[SaveRecord],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write the format; dataset.json goes last so a half-written directory never reads as valid."""
    url = str(url)
    fs, root = fsspec.core.url_to_fs(url)
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    n_pins = n_saves = 0
    with fs.open(f"{root}/pins.jsonl", "w", encoding="utf-8") as f:
        for pin in pins:
            f.write(json.dumps(asdict(pin), ensure_ascii=False) + "\n")
            n_pins += 1
    with fs.open(f"{root}/saves.jsonl", "w", encoding="utf-8") as f:
        for save in saves:
            f.write(json.dumps(asdict(save), ensure_ascii=False) + "\n")
            n_saves += 1
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "num_pins": n_pins,
        "num_saves": n_saves,
        **(meta or {}),
    }
    with fs.open(f"{root}/dataset.json", "w", encoding="utf-8") as f:
        json.dump(header, f, indent=2, sort_keys=True)
