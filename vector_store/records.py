"""The values that cross the vector_store API, and their conversion to and from Milvus rows.

I/O-free: validation (dimension, finite, non-zero, board cap), L2 normalisation and the shaping
of search results are plain functions here so they are unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

MAX_PIN_ID_LENGTH = 128
MAX_BOARD_ID_LENGTH = 128


@dataclass(frozen=True)
class PinVector:
    """One pin as stored in one version's collection.

    Only the fused `pin` vector is stored: the Milvus 2.3.5 server refuses a second vector field
    ("multiple vector fields is not supported"). Image and text query vectors live in the same
    space (DESIGN.md), so they search this one field.
    `board_ids` is a filter snapshot taken when the row is written; re-upsert to refresh it.
    """

    pin_id: str
    pin: Sequence[float] | Vector
    model_version: int
    created_at: datetime
    board_ids: tuple[str, ...] = ()
    is_ad: bool = False


@dataclass(frozen=True)
class StoredPin:
    """What `get` returns: the stored row, vector included (normalised)."""

    pin_id: str
    pin: Vector
    model_version: int
    created_at: datetime
    board_ids: tuple[str, ...]
    is_ad: bool


@dataclass(frozen=True)
class SearchHit:
    """One result; `model_version` says which version's collection (and model) produced it."""

    pin_id: str
    score: float
    model_version: int


def normalise(vector: Sequence[float] | Vector, dim: int) -> Vector:
    """L2-normalise so inner product equals cosine; refuse shapes and values that cannot rank."""
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"expected a vector of shape ({dim},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("vector has NaN or infinite components")
    norm = float(np.linalg.norm(array))
    if norm == 0.0:
        raise ValueError("zero vector cannot be normalised")
    normalised: Vector = (array / norm).astype(np.float32)
    return normalised


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def to_row(pin: PinVector, dim: int, max_boards: int) -> dict[str, Any]:
    """A Milvus row for `pin`, validated here because the 2.3.5 server does not enforce the
    ARRAY capacity (lite does) — the same input must behave the same on both backends."""
    if not pin.pin_id or len(pin.pin_id) > MAX_PIN_ID_LENGTH:
        raise ValueError(f"pin_id must be 1..{MAX_PIN_ID_LENGTH} characters: {pin.pin_id!r}")
    boards = tuple(dict.fromkeys(pin.board_ids))  # drop duplicates, keep order
    if len(boards) > max_boards:
        raise ValueError(f"pin {pin.pin_id!r} has {len(boards)} boards; the cap is {max_boards}")
    for board in boards:
        if not board or len(board) > MAX_BOARD_ID_LENGTH:
            raise ValueError(f"board id must be 1..{MAX_BOARD_ID_LENGTH} characters: {board!r}")
    return {
        "pin_id": pin.pin_id,
        "pin": normalise(pin.pin, dim).tolist(),
        "model_version": int(pin.model_version),
        "created_at": epoch_ms(pin.created_at),
        "board_ids": list(boards),
        "is_ad": bool(pin.is_ad),
    }


def from_row(row: Mapping[str, Any]) -> StoredPin:
    return StoredPin(
        pin_id=str(row["pin_id"]),
        pin=np.asarray(row["pin"], dtype=np.float32),
        model_version=int(row["model_version"]),
        created_at=from_epoch_ms(int(row["created_at"])),
        board_ids=tuple(str(b) for b in row["board_ids"]),
        is_ad=bool(row["is_ad"]),
    )


def shape_hits(
    raw: Iterable[tuple[str, float, int]], k: int, exclude: frozenset[str] = frozenset()
) -> list[SearchHit]:
    """Best-first, one hit per pin, excluded pins removed, at most k.

    The server already filters excluded ids; doing it again here keeps the guarantee even if a
    filter expression is mistyped or a backend returns a duplicate after an upsert.
    """
    best: dict[str, SearchHit] = {}
    for pin_id, score, version in raw:
        if pin_id in exclude:
            continue
        hit = SearchHit(pin_id=pin_id, score=float(score), model_version=int(version))
        if pin_id not in best or hit.score > best[pin_id].score:
            best[pin_id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.pin_id))[:k]


def batches(rows: Sequence[dict[str, Any]], size: int) -> Iterable[Sequence[dict[str, Any]]]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
