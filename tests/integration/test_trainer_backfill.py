"""Registry → backfill → alias switch on real Neo4j and Milvus, including a crash mid-fill."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from encoder.manifest import Manifest
from encoder.model import PinClipModel
from encoder.preprocess import pin_text
from graph_store import GraphStore
from pinclip.backfill import BackfillState, backfill, state_path
from pinclip.registry import ModelRegistry
from streams.content import FetchPolicy, load_image_bytes
from trainer.config import TrainConfig
from trainer.dataset import read_dataset
from trainer.evaluate import evaluate
from trainer.export_graph import export_graph, import_dataset
from trainer.generator import GeneratorConfig, generate
from trainer.loop import train
from vector_store import VectorStore

pytestmark = pytest.mark.integration

PINS = 48


@pytest.fixture
def prefix() -> str:
    return f"trb{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def graph(clean_graph: GraphStore) -> GraphStore:
    return clean_graph


@pytest.fixture
def vectors(milvus_uri: str, prefix: str) -> Iterator[VectorStore]:
    tag = prefix.strip("-")
    vs = VectorStore(milvus_uri, alias=f"{tag}_pins", dim=32, prefix=f"{tag}_v")
    try:
        yield vs
    finally:
        vs.purge()
        vs.close()


def _train(data: Path, out: Path, seed: int) -> PinClipModel:
    cfg = TrainConfig(
        data=str(data), out_dir=str(out), model="tiny", steps=3, batch_size=8,
        num_workers=0, threads=1, progress=False, heldout_fraction=0.2, seed=seed,
    )  # fmt: skip
    return PinClipModel.load(train(cfg, resume=False).model_dir)


def test_graph_export_registry_and_resumable_backfill(
    tmp_path: Path, graph: GraphStore, vectors: VectorStore, prefix: str
) -> None:
    generate(
        tmp_path / "gen",
        GeneratorConfig(num_pins=PINS, num_boards=8, num_users=4, image_size=32, seed=5),
    )
    import_dataset(graph, read_dataset(tmp_path / "gen"), id_prefix=prefix)

    # The exporter writes the format from the live graph; the trainer reads it back.
    n_pins, n_saves = export_graph(graph, tmp_path / "export", id_prefix=prefix)
    exported = read_dataset(tmp_path / "export")
    assert n_pins == PINS and n_saves == len(read_dataset(tmp_path / "gen").saves)
    assert all(p.pin_id.startswith(prefix) for p in exported.pins)

    registry = ModelRegistry(str(tmp_path / "registry"))
    models = [_train(tmp_path / "export", tmp_path / f"run{i}", seed=i) for i in (1, 2)]
    report = evaluate(exported, tmp_path / "run1" / "model", 0.2, 0, baselines=("random",))
    v1, _ = registry.register_model(models[0], report)
    v2, _ = registry.register_model(models[1], None, parent_version=v1)
    assert (v1, v2) == (1, 2) and registry.versions() == [1, 2]
    assert registry.read_eval(1)["cold_start_recall@10"] == report["cold_start_recall@10"]
    v2_dir = registry.local_dir(2, tmp_path / "cache")
    assert Manifest.load(v2_dir).verify(v2_dir) == []
    update = registry.model_update(2, "candidate")
    assert update.version == 2 and update.registry_uri.endswith("/v2")

    state_dir = tmp_path / "state"
    images = FetchPolicy(file_roots=(str(tmp_path / "gen"),))
    first = backfill(1, registry.local_dir(1, tmp_path / "cache"), graph, vectors, state_dir,
                     batch_size=8, id_prefix=prefix, fetch_policy=images,
                     progress=False)  # fmt: skip
    assert first.switched and vectors.live_version() == 1 and vectors.count(1) == PINS

    # v2: the process dies after 20 images; queries still go to v1.
    calls = {"n": 0}

    def crashing(uri: str) -> bytes:
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("simulated crash")
        return load_image_bytes(uri, images)

    with pytest.raises(RuntimeError, match="simulated crash"):
        backfill(2, v2_dir, graph, vectors, state_dir, batch_size=8, id_prefix=prefix,
                 load_image=crashing, progress=False)  # fmt: skip
    assert vectors.live_version() == 1
    state = BackfillState.load(state_path(state_dir, 2, prefix), 2)
    assert state.embedded == 16 and not state.done  # two whole batches of 8 were written

    announced: list[int] = []
    done = backfill(2, v2_dir, graph, vectors, state_dir, batch_size=8, id_prefix=prefix,
                    fetch_policy=images, on_switched=announced.append,
                    progress=False)  # fmt: skip
    assert done.resumed_from == state.last_pin_id
    assert done.embedded == PINS and vectors.count(2) == PINS
    assert vectors.live_version() == 2 and announced == [2]

    # Every hit through the alias is v2, and the stored vector is model v2's embedding.
    some = exported.pins[0]
    hits = vectors.search_by_pin(some.pin_id, k=5)
    assert hits and {h.model_version for h in hits} == {2}
    stored = vectors.get([some.pin_id])[0]
    pre_i, pre_t = models[1].image_preprocessor(), models[1].text_preprocessor()
    import torch

    ids, mask = pre_t.encode([pin_text(some.title, some.description)])
    with torch.no_grad():
        want = (
            models[1](
                torch.from_numpy(pre_i.load(exported.read_image_bytes(some))[None]),
                torch.from_numpy(ids),
                torch.from_numpy(mask),
            )
            .pin[0]
            .numpy()
        )
    assert float(np.dot(np.asarray(stored.pin), want)) > 0.999
