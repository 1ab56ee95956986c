"""What the API needs from the stores, the encoders and the content path, as Protocols.

`create_api(ApiDeps(...), ApiConfig(...))` takes these by injection, so the wiring (today
`pinclip.api.wiring`, later the one factory that builds stores and encoders from settings) can
change without touching a handler, and tests pass the real stores they set up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vector_store.backend import VectorReads

if TYPE_CHECKING:
    from graph_store import PinNode
    from streams.events import PinEmbedded

# The read side of vector_store.VectorStore: the API's slice of the one vector contract.
VectorReader = VectorReads


class GraphReader(Protocol):
    """The read side of graph_store.GraphStore."""

    def pins_with_boards(self, pin_ids: Sequence[str]) -> dict[str, tuple[PinNode, list[str]]]: ...

    def ping(self) -> None: ...


class QueryEmbedding(Protocol):
    version: int
    image: np.ndarray | None
    text: np.ndarray | None


class QueryEncoder(Protocol):
    async def embed_text(self, text: str) -> QueryEmbedding: ...

    async def embed_image(self, image_bytes: bytes) -> QueryEmbedding: ...


class EncoderProvider(Protocol):
    """The encoder of a given model version (loaded on first use)."""

    async def get(self, version: int) -> QueryEncoder: ...

    def is_loaded(self, version: int) -> bool: ...

    async def close(self) -> None: ...


class ImageSource(Protocol):
    """Reads a stored pin image by its URI through the content path (address policy, byte cap,
    deadline); raises streams.content.ContentError."""

    async def read(self, uri: str) -> bytes: ...

    async def aclose(self) -> None: ...


class RecentFeed(Protocol):
    """Pins as the stream embeds them (PinEmbedded events), newest first."""

    def latest(self, limit: int) -> list[PinEmbedded]: ...

    def describe(self) -> str: ...

    async def check(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ApiDeps:
    vectors: VectorReader
    graph: GraphReader
    encoders: EncoderProvider
    images: ImageSource
    recent: RecentFeed | None = None
