"""The values graph_store takes and returns: plain frozen dataclasses, no driver types leak out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PinNode:
    """A pin's content, kept so the pin can be re-embedded by a later model version.

    `pending=True` marks a placeholder: the pin was seen in a save before its creation event,
    so it exists in the graph (its edges count) but has no content yet.
    """

    pin_id: str
    title: str | None = None
    description: str | None = None
    image_uri: str | None = None
    created_at: datetime | None = None
    user_id: str | None = None
    is_ad: bool = False
    pending: bool = False
    # When the stream first wrote the pin (searchable from then on); None for pins loaded by
    # other paths (dataset import) or placeholders. The first value is kept on replays.
    embedded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Save:
    """One save (repin) event: `user_id` put `pin_id` on `board_id` at `ts` (aware datetime)."""

    pin_id: str
    board_id: str
    user_id: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class SaveEdge:
    """One Pin–Board edge as stored: `saves` counts distinct savers, not events."""

    pin_id: str
    board_id: str
    saves: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class Neighbor:
    """A graph neighbor of a pin with its score (meaning depends on the query that made it)."""

    pin_id: str
    score: float
