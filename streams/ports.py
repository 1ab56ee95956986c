"""What `streams` needs from the other packages, as `Protocol`s instead of `Any`.

The vector side is a slice of `vector_store.backend.VectorBackend` (one contract, sliced per
caller). `vector_store.VectorStore`, `graph_store.GraphStore` and `encoder.service.EncoderService`
satisfy these structurally; tests and benchmarks may pass anything else that does. Every method
either succeeds, or raises something `streams.errors.classify` sorts (a store's "unavailable"
error is transient; a store's other errors and `ValueError` for a refused row are
deterministic).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from graph_store.models import PinNode, Save
from vector_store.backend import VectorWrites

# Milvus as the stream sees it: the stream's slice of the one vector contract.
VectorSink = VectorWrites


@runtime_checkable
class GraphSink(Protocol):
    """Neo4j as the stream sees it: idempotent pin and save writes (blocking calls)."""

    def ensure_schema(self) -> None: ...
    def upsert_pins(self, pins: Sequence[PinNode]) -> int: ...
    def add_saves(self, saves: Sequence[Save]) -> int: ...
    def write_batch(
        self, pins: Sequence[PinNode], saves: Sequence[Save] = ()
    ) -> dict[str, list[str]]: ...  # one transaction; returns each pin's boards
    def close(self) -> None: ...


class Embedding(Protocol):
    """One pin's vectors from one model version (encoder.service.PinEmbedding satisfies it)."""

    @property
    def version(self) -> int: ...
    @property
    def image(self) -> np.ndarray | None: ...
    @property
    def text(self) -> np.ndarray | None: ...
    @property
    def pin(self) -> np.ndarray | None: ...


@runtime_checkable
class Embedder(Protocol):
    """One loaded model version (encoder.service.EncoderService satisfies it)."""

    @property
    def version(self) -> int: ...
    @property
    def dim(self) -> int: ...
    async def embed(self, content: Any) -> Embedding: ...
    async def embed_many(self, contents: list[Any]) -> Sequence[Embedding | Exception]: ...
    async def close(self) -> None: ...


@runtime_checkable
class BatchEmbedder(Protocol):
    """One loaded model version fed whole, pre-decoded batches (the embed-and-write path's view
    of encoder.service.EncoderService)."""

    @property
    def version(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def preprocess_key(self) -> Hashable: ...  # equal keys: the same pixels, decode once
    def image_preprocessor(self) -> Any: ...  # picklable; .load(bytes) -> float32 [3,S,S]
    async def embed_pixels(
        self, pixels: np.ndarray, titles: list[str], descriptions: list[str]
    ) -> np.ndarray: ...  # pin vectors float32 [B,D]
    async def close(self) -> None: ...


class StoreFactory(Protocol):
    """Builds the stores and encoders from settings (pinclip.factory.Factory satisfies it): the
    worker is handed one and calls it once it knows the model's dimension."""

    def vector_store(self, dim: int | None = None) -> VectorSink: ...
    def graph_store(self) -> GraphSink: ...
    def encoder_service(self, model_dir: Path) -> BatchEmbedder: ...


if TYPE_CHECKING:  # mypy proves the real store keeps the stream's graph contract
    from graph_store.store import GraphStore

    _graph_store_is_a_sink: type[GraphSink] = GraphStore
