"""The backfill as a consumer group (pinclip.reembed) on real Kafka, Neo4j and the Milvus
server: three workers re-embed a 5,000-pin catalogue into v2 while the stream keeps adding new
pins; one worker is killed (SIGKILL) mid-way. The alias moves once, after completion; v2 then
holds every pin exactly once; a reader searching through the alias all along never gets a result
list that mixes versions, and never sees v2 before the switch."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import record_alias_moves, settings_of, until

from graph_store import GraphStore, PinNode
from pinclip.backfill import BackfillReport
from pinclip.reembed.broker import ProgressReader
from pinclip.reembed.group import GroupOptions, ReembedGroup
from pinclip.reembed.worker import model_key
from pinclip.registry import ModelRegistry, send_model_update
from streams.config import WorkerConfig
from streams.events import NewPin
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import THEMES, draw_image
from streams.writers import GroupWriters
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOGUE, IMAGES, ITEM = 5000, 40, 100
WAIT_S = 300.0


Env = tuple[WorkerConfig, str, int]


@pytest.fixture
def env(stream_run: Callable[..., Env]) -> Env:
    return stream_run("bfg", topic_partitions=6, session_timeout_s=6.0)


def image_uris(root: Path) -> list[str]:
    rng, themes = random.Random(0), sorted(THEMES)
    uris = []
    for i in range(IMAGES):
        path = root / f"cat-{i}.png"
        path.write_bytes(draw_image(themes[i % len(themes)], rng, size=48))
        uris.append(path.resolve().as_uri())
    return uris


def seed_catalogue(graph: GraphStore, prefix: str, uris: list[str]) -> list[str]:
    now = datetime.now(UTC)
    pins = [
        PinNode(f"{prefix}c{i:05d}", f"pin {i}", "", uris[i % len(uris)], now, f"{prefix}u")
        for i in range(CATALOGUE)
    ]
    graph.upsert_pins(pins)
    return [p.pin_id for p in pins]


def live_pins(prefix: str, uris: list[str], start: int, count: int) -> list[NewPin]:
    """Ids after every catalogue id: no work item's range holds them, the stream writes them."""
    return [
        NewPin(pin_id=f"{prefix}n{i:04d}", board_id=f"{prefix}b{i % 3}", user_id=f"{prefix}u",
               title=f"new {i}", image_uri=uris[i % len(uris)], created_at=datetime.now(UTC))
        for i in range(start, start + count)
    ]  # fmt: skip


class Reader(threading.Thread):
    """Searches through the alias until stopped: (time, versions in the one result list)."""

    def __init__(self, vectors: VectorStore, dim: int) -> None:
        super().__init__(daemon=True)
        self.vectors, self.dim = vectors, dim
        self.seen: list[tuple[float, frozenset[int]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        rng = np.random.default_rng(0)
        while not self.stop.is_set():
            hits = self.vectors.search(rng.standard_normal(self.dim), k=20)
            self.seen.append((time.monotonic(), frozenset(h.model_version for h in hits)))
            time.sleep(0.05)


def test_three_workers_backfill_5000_pins_one_killed_the_alias_moves_once_after_completion(
    env: tuple[WorkerConfig, str, int], export_tiny_model: Callable[..., int]
) -> None:
    config, prefix, dim = env
    root = config.state_dir.parent
    uris = image_uris(root)
    secret = config.neo4j_password.get_secret_value()
    graph = GraphStore(config.neo4j_uri, config.neo4j_user, secret)
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=dim,
                     prefix=config.milvus_prefix)  # fmt: skip
    moves = record_alias_moves(vs)
    reading = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=dim,
                          prefix=config.milvus_prefix)  # fmt: skip
    producer = EventProducer(config.kafka_bootstrap, config.topics)
    progress = StreamProgress(config)
    registry = ModelRegistry(config.registry_url)
    catalogue = seed_catalogue(graph, prefix, uris)
    outcome: list[BackfillReport | BaseException] = []
    announced: list[int] = []
    try:
        with WorkerProcess(config):
            first = live_pins(prefix, uris, 0, 10)
            producer.send_many(first)
            producer.flush()
            assert progress.wait_until(lambda p: all(x.pin_id in p.embedded for x in first), WAIT_S)
            assert vs.live_version() == 1
            export_tiny_model(Path(config.registry_url), 2)
            send_model_update(config.kafka_bootstrap, config.topics.model_updates,
                              registry.model_update(2, "candidate"))  # fmt: skip
            assert until(lambda: bool(vs.writers(2)) if 2 in vs.versions() else False, WAIT_S)

            writers = GroupWriters(config.kafka_bootstrap, config.consumer_group, vs)
            options = GroupOptions(workers=3, item_size=ITEM, id_prefix=prefix, progress=False,
                                   writers=writers, on_switched=announced.append,
                                   loglevel="WARNING")  # fmt: skip
            group = ReembedGroup(config, 2, graph, vs, options)

            def run_group() -> None:
                try:
                    outcome.append(group.run())
                except BaseException as exc:  # asserted below
                    outcome.append(exc)

            reader = Reader(reading, dim)
            reader.start()
            runner = threading.Thread(target=run_group, daemon=True)
            runner.start()

            # Kill one member once the group is well under way.
            results = ProgressReader(group.topics, 2, model_key(config, 2))
            assert until(lambda: len(results.refresh().done) >= 5 or not runner.is_alive(), WAIT_S)
            assert runner.is_alive() and len(results.progress.done) < CATALOGUE // ITEM, outcome
            victim = group.processes[0]
            assert victim.poll() is None
            victim.kill()
            victim.wait()

            # New pins keep arriving while the group fills v2.
            during = live_pins(prefix, uris, 10, 30)
            for start in range(0, len(during), 10):
                producer.send_many(during[start : start + 10])
                producer.flush()
                time.sleep(0.5)
            assert progress.wait_until(lambda p: all(x.pin_id in p.embedded for x in during),
                                       WAIT_S)  # fmt: skip
            runner.join(WAIT_S)
            assert not runner.is_alive(), "the group did not finish"
            # The reader goes on until its searches come from v2 (the switch has just happened).
            assert until(lambda: any(2 in v for _, v in reader.seen), 60), reader.seen[-3:]
            reader.stop.set()
            reader.join(30)
            results.close()
    finally:
        graph.close()
        reading.close()
        producer.close()

    report = outcome[0]
    assert isinstance(report, BackfillReport), report
    assert report.switched and report.failed == 0
    # The plan holds the catalogue and the pins streamed before it; each item is counted once,
    # the ones the killed worker had in hand included.
    assert report.embedded == CATALOGUE + len(first)
    assert [v for _, v, _ in moves] == [2] and announced == [2]  # the alias moved once
    assert vs.live_version() == 2

    every = catalogue + [p.pin_id for p in first + during]
    stored = [p.pin_id for p in vs.get(every, 2, "Strong")]
    assert sorted(stored) == sorted(every)  # every pin, once
    assert vs.count(2) == len(every)  # and nothing else, no pin twice
    vs.close()

    switched_at = moves[0][0]
    assert all(len(versions) == 1 for _, versions in reader.seen if versions)  # never mixed
    assert all(2 not in versions for at, versions in reader.seen if at < switched_at)
    order = [next(iter(v)) for _, v in reader.seen if v]
    assert order == sorted(order) and order[0] == 1 and order[-1] == 2, order[:5]


def test_pinclip_backfill_workers_runs_the_group_from_the_command_line(
    env: tuple[WorkerConfig, str, int],
    export_tiny_model: Callable[..., int],
    run_pinclip: Callable[..., Any],
) -> None:
    config, prefix, dim = env
    root = config.state_dir.parent
    uris = image_uris(root)
    export_tiny_model(Path(config.registry_url), 2)
    secret = config.neo4j_password.get_secret_value()
    with GraphStore(config.neo4j_uri, config.neo4j_user, secret) as graph:
        now = datetime.now(UTC)
        graph.upsert_pins([PinNode(f"{prefix}c{i:04d}", f"pin {i}", "", uris[i % len(uris)], now)
                           for i in range(300)])  # fmt: skip
    settings = settings_of(config, root)
    done = run_pinclip("backfill", "--version", "2", "--workers", "2", "--item-size", "40",
                       "--id-prefix", prefix, "--no-announce", cwd=root, **settings)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["embedded"] == 300 and report["failed"] == 0 and report["switched"]
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=dim,
                     prefix=config.milvus_prefix)  # fmt: skip
    try:
        assert vs.live_version() == 2 and vs.count(2) == 300
    finally:
        vs.close()
    logs = sorted((config.state_dir / "reembed").glob("worker-v2-*.log"))
    assert len(logs) == 2  # two members ran
    assert not (config.state_dir / "reembed" / "config-v2.json").exists()  # secrets removed
