"""Pure shaping of write batches into Cypher parameter rows (no driver, unit-testable).

Rows are deduplicated and sorted before they are sent: one row per node or edge per batch keeps
the Cypher simple (no intra-statement read-your-write subtleties), and a stable lock order
lowers the chance of deadlocks between concurrent writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from graph_store.models import PinNode, Save

T = TypeVar("T")


def as_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; a naive value is taken to be UTC already.

    Neo4j stores naive and aware values as different types that do not compare, so every
    timestamp is normalised before it is written.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pin_rows(pins: Iterable[PinNode]) -> list[dict[str, Any]]:
    """One row per pin_id (the last occurrence wins), sorted by pin_id."""
    latest: dict[str, PinNode] = {pin.pin_id: pin for pin in pins}
    return [
        {
            "pin_id": pin.pin_id,
            "title": pin.title,
            "description": pin.description,
            "image_uri": pin.image_uri,
            "created_at": as_utc(pin.created_at) if pin.created_at is not None else None,
            "user_id": pin.user_id,
            "is_ad": bool(pin.is_ad),
            "embedded_at": as_utc(pin.embedded_at) if pin.embedded_at is not None else None,
        }
        for pin_id, pin in sorted(latest.items())
    ]


def edge_rows(saves: Iterable[Save]) -> list[dict[str, Any]]:
    """Coalesce save events into one row per (pin, board) edge, sorted by (pin_id, board_id).

    A row carries the distinct savers and the earliest and latest timestamps; the write merges
    them into the edge with set union, min and max, all of which ignore repetition — which is
    what makes replaying a batch a no-op.
    """
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for save in saves:
        moment = as_utc(save.ts)
        row = edges.get((save.pin_id, save.board_id))
        if row is None:
            edges[(save.pin_id, save.board_id)] = {
                "pin_id": save.pin_id,
                "board_id": save.board_id,
                "users": {save.user_id},
                "first_at": moment,
                "last_at": moment,
            }
            continue
        row["users"].add(save.user_id)
        row["first_at"] = min(row["first_at"], moment)
        row["last_at"] = max(row["last_at"], moment)
    return [{**row, "users": sorted(row["users"])} for _, row in sorted(edges.items())]


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None for "").

    Lets a prefix scan be a plain index range [prefix, bound), which the planner can combine
    with a keyset lower bound, unlike STARTS WITH.
    """
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


def key_successor(key: str) -> str:
    """The smallest string greater than `key`: the keyset lower bound of the next page."""
    return key + "\0"
