"""`retrain_once` on real Neo4j + Milvus + Kafka: a first round promotes and switches the alias;
a round whose candidate cannot beat the live model is rejected and registers nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from graph_store import GraphStore
from pinclip.registry import ModelRegistry, send_model_update
from pinclip.retrain import RetrainDeps, retrain_once
from streams.content import FetchPolicy
from streams.events import ModelUpdate
from trainer.config import TrainConfig
from trainer.dataset import read_dataset
from trainer.export_graph import import_dataset
from trainer.generator import GeneratorConfig, generate
from vector_store import VectorStore

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"trr{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def graph(clean_graph: GraphStore) -> GraphStore:
    return clean_graph


@pytest.fixture
def topic(kafka_bootstrap: str, prefix: str) -> Iterator[str]:
    name = f"{prefix}model.updates"
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        if name in admin.list_topics():
            admin.delete_topics([name])
    finally:
        admin.close()


@pytest.fixture
def vectors(milvus_server_uri: str, prefix: str) -> Iterator[VectorStore]:
    tag = prefix.strip("-")
    vs = VectorStore(milvus_server_uri, alias=f"{tag}_pins", dim=32, prefix=f"{tag}_v")
    try:
        yield vs
    finally:
        vs.purge()
        vs.close()


def _updates(bootstrap: str, topic: str) -> list[ModelUpdate]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: list[ModelUpdate] = []
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=2000).values():
                out += [ModelUpdate.model_validate_json(r.value) for r in records]
        return out
    finally:
        consumer.close()


def test_promote_then_reject(
    tmp_path: Path,
    graph: GraphStore,
    vectors: VectorStore,
    prefix: str,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    generate(
        tmp_path / "gen",
        GeneratorConfig(num_pins=60, num_boards=8, num_users=4, image_size=32, seed=9),
    )
    import_dataset(graph, read_dataset(tmp_path / "gen"), id_prefix=prefix)
    registry = ModelRegistry(str(tmp_path / "registry"))
    deps = RetrainDeps(
        registry=registry,
        graph=graph,
        vectors=vectors,
        publish=lambda update: send_model_update(kafka_bootstrap, topic, update),
        state_dir=tmp_path / "state",
        id_prefix=prefix,
        fetch_policy=FetchPolicy(file_roots=(str(tmp_path),)),
    )
    template = TrainConfig(
        model="tiny", steps=3, batch_size=8, num_workers=0, threads=1, progress=False,
        heldout_fraction=0.2,
    )  # fmt: skip

    first = retrain_once(deps, template, tmp_path / "work")
    assert first.decision.promote and first.decision.live is None
    assert first.version == 1 and first.backfilled == 60
    assert vectors.live_version() == 1 and registry.live() == 1
    assert registry.read_eval(1) is not None

    # Demand an impossible improvement: the candidate must lose and nothing may change.
    second = retrain_once(deps, template, tmp_path / "work", tolerance=-2.0)
    assert not second.decision.promote and second.version is None
    assert "re-scored on the same split" in second.decision.reason
    assert registry.versions() == [1] and vectors.live_version() == 1

    sent = [(u.version, u.stage) for u in _updates(kafka_bootstrap, topic)]
    assert sent == [(1, "candidate"), (1, "promoted")]
