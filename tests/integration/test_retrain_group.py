"""A retrain round whose backfill is a re-embed consumer group (`pinclip retrain --workers N`),
on real Kafka, Neo4j and the Milvus server: the promoted candidate is filled by two group members
(child processes that load it from the registry themselves), the plan is on the progress topic,
the alias moves once, after the fill, and the new collection holds every graph pin exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from conftest import record_alias_moves, settings_of

from graph_store import GraphStore
from pinclip.reembed.broker import ProgressReader, ReembedTopics
from pinclip.reembed.group import GroupOptions, group_fill
from pinclip.reembed.worker import model_key
from pinclip.registry import ModelRegistry
from pinclip.retrain import RetrainDeps, retrain_once
from streams.config import WorkerConfig
from streams.events import ModelUpdate
from trainer.config import TrainConfig
from trainer.dataset import read_dataset
from trainer.export_graph import import_dataset
from trainer.generator import GeneratorConfig, generate
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PINS = 90


def test_a_retrain_round_backfills_the_candidate_through_the_reembed_group(
    stream_run: Callable[..., tuple[WorkerConfig, str, int]], tmp_path: Path
) -> None:
    config, prefix, _ = stream_run("rtg", topic_partitions=4)
    generate(tmp_path / "gen", GeneratorConfig(num_pins=PINS, num_boards=8, num_users=4,
                                               image_size=32, seed=5))  # fmt: skip
    secret = config.neo4j_password.get_secret_value()
    graph = GraphStore(config.neo4j_uri, config.neo4j_user, secret)
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=32,
                     prefix=config.milvus_prefix)  # fmt: skip
    moves = record_alias_moves(vs)
    registry = ModelRegistry(config.registry_url)  # v1 is there already (no alias yet)
    published: list[ModelUpdate] = []
    try:
        import_dataset(graph, read_dataset(tmp_path / "gen"), id_prefix=prefix)
        deps = RetrainDeps(registry=registry, graph=graph, vectors=vs, publish=published.append,
                           state_dir=config.state_dir, id_prefix=prefix)  # fmt: skip
        options = GroupOptions(workers=2, item_size=16, id_prefix=prefix, progress=False,
                               poll_s=0.5, loglevel="WARNING")  # fmt: skip
        deps.fill = group_fill(config, graph, vs, options)
        template = TrainConfig(model="tiny", steps=3, batch_size=8, num_workers=0, threads=1,
                               progress=False, heldout_fraction=0.2)  # fmt: skip

        outcome = retrain_once(deps, template, tmp_path / "work")
        assert outcome.decision.promote and outcome.version == 2, outcome.decision.reason
        assert outcome.backfilled == PINS

        # The group did the fill: its plan is on the progress topic, both members logged.
        reader = ProgressReader(ReembedTopics.of(config, 2), 2, model_key(config, 2))
        try:
            planned = reader.refresh().planned
            assert planned is not None and planned.pins == PINS
            assert len(reader.progress.done) == -(-PINS // 16)  # every item, once
        finally:
            reader.close()
        logs = sorted(p.name for p in (config.state_dir / "reembed").glob("worker-v2-*.log"))
        assert logs == ["worker-v2-0.log", "worker-v2-1.log"]

        # The alias moved once, to a complete collection; then the promotion was announced.
        assert [(v, rows) for _, v, rows in moves] == [(2, PINS)]
        assert vs.live_version() == 2 and registry.live() == 2
        assert [(u.version, u.stage) for u in published] == [(2, "candidate"), (2, "promoted")]
        pin_ids = [p.pin_id for p in read_dataset(tmp_path / "gen").pins]
        stored = [p.pin_id for p in vs.get([prefix + i for i in pin_ids], 2, "Strong")]
        assert sorted(stored) == sorted(prefix + i for i in pin_ids) and vs.count(2) == PINS
    finally:
        graph.close()
        vs.close()


def test_pinclip_retrain_workers_runs_the_round_with_the_group_from_the_command_line(
    stream_run: Callable[..., tuple[WorkerConfig, str, int]],
    run_pinclip: Callable[..., Any],
    tmp_path: Path,
) -> None:
    config, prefix, _ = stream_run("rtc", topic_partitions=3)
    generate(tmp_path / "gen", GeneratorConfig(num_pins=PINS, num_boards=8, num_users=4,
                                               image_size=32, seed=6))  # fmt: skip
    secret = config.neo4j_password.get_secret_value()
    with GraphStore(config.neo4j_uri, config.neo4j_user, secret) as graph:
        import_dataset(graph, read_dataset(tmp_path / "gen"), id_prefix=prefix)
    settings = settings_of(config, tmp_path)
    done = run_pinclip("retrain", "--once", "--model", "tiny", "--steps", "3", "--workers", "2",
                       "--item-size", "30", "--id-prefix", prefix, "--worker-timeout", "0",
                       cwd=tmp_path, **settings)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"v2 is live: registered, {PINS} pins backfilled" in done.stdout
    logs = sorted(p.name for p in (config.state_dir / "reembed").glob("worker-v2-*.log"))
    assert logs == ["worker-v2-0.log", "worker-v2-1.log"]  # the group did the fill
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=32,
                     prefix=config.milvus_prefix)  # fmt: skip
    try:
        assert vs.live_version() == 2 and vs.count(2) == PINS
    finally:
        vs.close()
