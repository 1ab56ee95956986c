"""The worker and the backfill share one embed-and-write path: for the same pin they write the
same Neo4j node and the same Milvus row (real Neo4j, the Milvus server, a real ONNX model)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from graph_store import GraphStore, Save
from pinclip.backfill import backfill
from pinclip.factory import Factory
from streams.config import WorkerConfig
from streams.events import NewPin
from streams.pipeline import SourceRecord
from streams.synthetic import THEMES, draw_image
from streams.worker import PinWorker

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"ewp{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def config(
    tmp_path: Path,
    prefix: str,
    milvus_server_uri: str,
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
) -> Iterator[WorkerConfig]:
    dim = export_tiny_model(tmp_path / "registry", 1)
    config = worker_config(prefix.strip("-"), milvus_server_uri, tmp_path)
    yield config
    store = Factory.from_worker_config(config).vector_store(dim)
    store.purge()
    store.close()


def snapshot(graph: GraphStore, vectors: Any, pin_id: str) -> tuple[Any, Any, list[str]]:
    [node] = graph.get_pins([pin_id])
    [row] = vectors.get([pin_id], version=1)
    return node, row, graph.board_ids([pin_id])[pin_id]


async def test_the_worker_and_the_backfill_write_the_same_row_for_a_pin(
    config: WorkerConfig, clean_graph: GraphStore, prefix: str
) -> None:
    import random

    factory = Factory.from_worker_config(config)
    pin_id = f"{prefix}p1"
    created = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    # A repin that arrived before the pin itself: the graph has a placeholder with one board.
    clean_graph.add_saves([Save(pin_id, f"{prefix}b-early", f"{prefix}u2", created)])
    image = draw_image(next(iter(THEMES)), random.Random(1), size=64, fmt="PNG")
    event = NewPin.with_inline_image(
        image,
        pin_id=pin_id,
        board_id=f"{prefix}b1",
        user_id=f"{prefix}u1",
        title="Red bike",
        description="vintage",
        created_at=created,
        is_ad=True,
    )

    worker = PinWorker(config, factory=factory)
    await worker.start()
    outcome = await worker.handle_new_pins([SourceRecord("t", 0, 0, event.to_json_bytes())])
    assert [e.pin_id for e in outcome.embedded] == [pin_id] and outcome.dead == []
    by_worker = snapshot(clean_graph, worker.vector_store, pin_id)
    vectors = worker.vector_store
    vectors.delete([pin_id], 1)  # the backfill must bring the row back by itself
    await worker.close()

    vectors = factory.vector_store()
    report = await _backfill(config, factory, clean_graph, vectors, prefix)
    assert (report.embedded, report.failed) == (1, 0)
    by_backfill = snapshot(clean_graph, vectors, pin_id)
    vectors.close()

    node_w, row_w, boards_w = by_worker
    node_b, row_b, boards_b = by_backfill
    assert node_b == node_w and not node_w.pending
    assert node_w.embedded_at is not None  # the stream's first write, kept by the backfill
    assert boards_b == boards_w == sorted([f"{prefix}b-early", f"{prefix}b1"])
    fields = ("pin_id", "model_version", "created_at", "is_ad", "title", "image_uri")
    assert [getattr(row_b, f) for f in fields] == [getattr(row_w, f) for f in fields]
    assert (row_w.title, row_w.image_uri) == ("Red bike", node_w.image_uri)  # the pin's content
    assert tuple(row_b.board_ids) == tuple(row_w.board_ids) == tuple(boards_w)
    assert np.allclose(np.asarray(row_b.pin), np.asarray(row_w.pin), atol=1e-5)


async def _backfill(
    config: WorkerConfig, factory: Factory, graph: GraphStore, vectors: Any, prefix: str
) -> Any:
    import asyncio

    model_dir = Path(config.registry_url) / "v1"
    return await asyncio.to_thread(
        backfill,
        1,
        model_dir,
        graph,
        vectors,
        config.state_dir,
        id_prefix=prefix,
        switch=False,
        progress=False,
    )
