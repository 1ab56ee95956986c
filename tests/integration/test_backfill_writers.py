"""No pin left behind by a backfill while the stream runs (streams.writers), on real Kafka,
Neo4j and the Milvus server.

The race, forced: a worker prepares candidate v2 — its collection exists — but is slow to
commit it, and pins streamed meanwhile are written to v1 only. They are streamed once the
backfill has started and either read the graph (the old rule: the collection exists, go — the
pins land behind it and are missing from v2 when the alias moves; this test then fails) or
waits for every member of the workers' consumer group to mark v2 (the rule). With the rule the
backfill reads the graph only after the commit, and every pin is in v2 when the alias moves.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from conftest import until

from graph_store import GraphStore
from pinclip.backfill import BackfillReport, backfill
from pinclip.registry import ModelRegistry, send_model_update
from streams.config import WorkerConfig
from streams.content import load_image_bytes
from streams.events import NewPin
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import THEMES, draw_image
from streams.writers import GroupWriters
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_S = 180.0
BEFORE, WINDOW = 16, 8
SCRIPT = Path(__file__).with_name("slow_commit_worker.py")


Env = tuple[WorkerConfig, str, int]


@pytest.fixture
def env(stream_run: Callable[..., Env]) -> Env:
    return stream_run("bfw")


def new_pins(config: WorkerConfig, prefix: str, start: int, count: int) -> list[NewPin]:
    rng, themes = random.Random(start), sorted(THEMES)
    pins = []
    for i in range(start, start + count):
        image = config.state_dir.parent / f"img-{i}.png"
        image.write_bytes(draw_image(themes[i % len(themes)], rng, size=48))
        pins.append(
            NewPin(
                pin_id=f"{prefix}p{i:03d}",
                board_id=f"{prefix}b{i % 3}",
                user_id=f"{prefix}u",
                title=f"pin {i}",
                image_uri=image.resolve().as_uri(),
                created_at=datetime.now(UTC),
            )
        )
    return pins


def stream(producer: EventProducer, progress: StreamProgress, pins: list[NewPin]) -> None:
    producer.send_many(pins)
    producer.flush()
    assert progress.wait_until(lambda p: all(x.pin_id in p.embedded for x in pins), WAIT_S)


class Watched(GroupWriters):
    """The real rule; `waiting` is set once it answered "some worker does not write it yet"."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.waiting = threading.Event()

    def pending(self, version: int) -> list[str]:
        pending = super().pending(version)
        if pending:
            self.waiting.set()
        return pending


def test_a_backfill_leaves_no_pin_behind_when_a_worker_is_slow_to_commit(
    env: tuple[WorkerConfig, str, int], export_tiny_model: Callable[..., int]
) -> None:
    config, prefix, dim = env
    registry = ModelRegistry(config.registry_url)
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, dim=dim,
                     prefix=config.milvus_prefix)  # fmt: skip
    producer = EventProducer(config.kafka_bootstrap, config.topics)
    progress = StreamProgress(config)
    secret = config.neo4j_password.get_secret_value()
    graph = GraphStore(config.neo4j_uri, config.neo4j_user, secret)
    group = Watched(config.kafka_bootstrap, config.consumer_group, vs)

    # The backfill's image reads mark "it has read the graph" and then wait for the test: the
    # window's pins are streamed only once the backfill either read the graph (it did not wait
    # for the worker — they land behind it) or waits for the worker's mark (the rule).
    read_graph, go_on = threading.Event(), threading.Event()

    def load_image(uri: str) -> bytes:
        read_graph.set()
        assert go_on.wait(WAIT_S)
        return load_image_bytes(uri, config.fetch)

    ids: set[str] = set()
    at_switch: dict[str, set[str]] = {}
    outcome: list[BackfillReport | BaseException] = []

    def switched(version: int) -> None:  # the alias has just moved: is every pin in v2?
        at_switch["missing"] = ids - {p.pin_id for p in vs.get(list(ids), version, "Strong")}

    def run_backfill() -> None:
        try:
            outcome.append(
                backfill(
                    2,
                    Path(config.registry_url) / "v2",
                    graph,
                    vs,
                    config.state_dir,
                    batch_size=8,
                    id_prefix=prefix,
                    load_image=load_image,
                    progress=False,
                    writers=group,
                    on_switched=switched,
                )
            )
        except BaseException as exc:  # asserted below
            outcome.append(exc)

    try:
        with WorkerProcess(config, command=(sys.executable, str(SCRIPT))) as worker:
            first = new_pins(config, prefix, 0, BEFORE)
            ids |= {p.pin_id for p in first}
            stream(producer, progress, first)
            export_tiny_model(Path(config.registry_url), 2)
            send_model_update(config.kafka_bootstrap, config.topics.model_updates,
                              registry.model_update(2, "candidate"))  # fmt: skip
            assert until(lambda: 2 in vs.versions(), WAIT_S)  # the worker prepared v2, and holds

            runner = threading.Thread(target=run_backfill, daemon=True)
            runner.start()
            assert until(lambda: read_graph.is_set() or group.waiting.is_set(), WAIT_S)

            # Prepared, not committed: pins streamed now are written to v1 only.
            window = new_pins(config, prefix, BEFORE, WINDOW)
            ids |= {p.pin_id for p in window}
            stream(producer, progress, window)
            go_on.set()
            assert {tuple(progress.embedded[p.pin_id].model_versions) for p in window} == {(1,)}
            assert not {p.pin_id for p in window} & {p.pin_id for p in vs.get(list(ids), 2)}
            time.sleep(2)
            # Still waiting for the worker: the graph not read, the alias not moved.
            assert runner.is_alive() and not read_graph.is_set(), (outcome, at_switch)
            assert vs.live_version() == 1

            (config.state_dir / "release-commit").touch()  # the worker commits v2, marks it
            worker.wait_logged("writer_marked", WAIT_S, version=2)
            runner.join(WAIT_S)
            assert not runner.is_alive()
            later = new_pins(config, prefix, BEFORE + WINDOW, 4)
            stream(producer, progress, later)  # committed: both versions
            assert {tuple(progress.embedded[p.pin_id].model_versions) for p in later} == {(1, 2)}
    finally:
        go_on.set()
        progress.close()
        producer.close()
        graph.close()

    assert until(lambda: group.members() == [], 60)  # stopped: no worker, nothing to wait for
    assert group.pending(2) == []
    [report] = outcome
    assert isinstance(report, BackfillReport), report
    assert report.switched and report.embedded == BEFORE + WINDOW
    assert at_switch == {"missing": set()}  # every pin was in v2 when the alias moved
    assert vs.live_version() == 2
    vs.close()
