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
# The pin's content in its row, so a search answers with it (no second store to ask). Caps are
# in UTF-8 bytes: the 2.3.5 server counts bytes, milvus-lite characters; bytes satisfy both.
MAX_TITLE_BYTES = 1024  # longer titles are cut (at a character boundary); Neo4j keeps them whole
MAX_IMAGE_URI_BYTES = 4096  # the NewPin event's cap; a longer URI is left out, never cut
CONTENT_FIELDS = ("title", "image_uri")  # absent from collections made before they existed


@dataclass(frozen=True)
class PinVector:
    """One pin as stored in one version's collection.

    Only the fused `pin` vector is stored: the Milvus 2.3.5 server refuses a second vector field
    ("multiple vector fields is not supported"). Image and text query vectors live in the same
    space (DESIGN.md), so they search this one field.
    `board_ids` is a filter snapshot taken when the row is written; re-upsert to refresh it.
    `title` and `image_uri` come back with every hit (see `CONTENT_FIELDS` for the caps).
    """

    pin_id: str
    pin: Sequence[float] | Vector
    model_version: int
    created_at: datetime
    board_ids: tuple[str, ...] = ()
    is_ad: bool = False
    title: str = ""
    image_uri: str = ""


@dataclass(frozen=True)
class StoredPin:
    """What `get` returns: the stored row, vector included (normalised). `title` and
    `image_uri` are None in a collection created before rows carried them."""

    pin_id: str
    pin: Vector
    model_version: int
    created_at: datetime
    board_ids: tuple[str, ...]
    is_ad: bool
    title: str | None = None
    image_uri: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """One result; `model_version` says which version's collection (and model) produced it.

    The row's content comes with it: `board_ids` (the snapshot filters use), `title` and
    `image_uri` — None for the last two in a collection created before rows carried them.
    """

    pin_id: str
    score: float
    model_version: int
    board_ids: tuple[str, ...] = ()
    title: str | None = None
    image_uri: str | None = None


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


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits `max_bytes` (never half a
    character)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def content_values(title: str, image_uri: str) -> dict[str, str]:
    """The content fields of a row: the title cut to its cap, the URI whole or not at all (a cut
    URI would point somewhere else; readers of an empty one ask the graph)."""
    fits = len(image_uri.encode("utf-8")) <= MAX_IMAGE_URI_BYTES
    return {
        "title": truncate_utf8(title, MAX_TITLE_BYTES),
        "image_uri": image_uri if fits else "",
    }


def to_row(pin: PinVector, dim: int, max_boards: int, content: bool = True) -> dict[str, Any]:
    """A Milvus row for `pin`, validated here because the 2.3.5 server does not enforce the
    ARRAY capacity (lite does) — the same input must behave the same on both backends.
    `content=False` leaves out the content fields (a collection created without them)."""
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
        **(content_values(pin.title, pin.image_uri) if content else {}),
    }


def from_row(row: Mapping[str, Any]) -> StoredPin:
    return StoredPin(
        pin_id=str(row["pin_id"]),
        pin=np.asarray(row["pin"], dtype=np.float32),
        model_version=int(row["model_version"]),
        created_at=from_epoch_ms(int(row["created_at"])),
        board_ids=tuple(str(b) for b in row["board_ids"]),
        is_ad=bool(row["is_ad"]),
        title=_optional_str(row.get("title")),
        image_uri=_optional_str(row.get("image_uri")),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def shape_hits(
    raw: Iterable[tuple[str, float, Mapping[str, Any]]],
    k: int,
    exclude: frozenset[str] = frozenset(),
) -> list[SearchHit]:
    """Best-first, one hit per pin, excluded pins removed, at most k. Each raw hit is (id,
    score, its output fields); fields the collection does not have are simply absent.

    The server already filters excluded ids; doing it again here keeps the guarantee even if a
    filter expression is mistyped or a backend returns a duplicate after an upsert.
    """
    best: dict[str, SearchHit] = {}
    for pin_id, score, fields in raw:
        if pin_id in exclude:
            continue
        hit = SearchHit(
            pin_id=pin_id,
            score=float(score),
            model_version=int(fields["model_version"]),
            board_ids=tuple(str(b) for b in fields.get("board_ids") or ()),
            title=_optional_str(fields.get("title")),
            image_uri=_optional_str(fields.get("image_uri")),
        )
        if pin_id not in best or hit.score > best[pin_id].score:
            best[pin_id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.pin_id))[:k]


def batches(rows: Sequence[dict[str, Any]], size: int) -> Iterable[Sequence[dict[str, Any]]]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
