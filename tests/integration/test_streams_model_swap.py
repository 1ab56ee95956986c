"""Hot swap on real services: kcat-produced pins, a candidate model → dual writes into both
collections, promotion → new version only. Model updates are produced with `pinclip produce`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from graph_store import GraphStore
from streams.config import WorkerConfig
from streams.events import NewPin
from streams.models import model_update_for
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAIT_S = 180.0


@pytest.fixture(scope="module")
def setup(
    milvus_server_uri: str,
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WorkerConfig, SyntheticStream, str]]:
    tmp = tmp_path_factory.mktemp("swap")
    tag = "swap" + uuid.uuid4().hex[:8]
    export_tiny_model(tmp / "registry", 1)
    export_tiny_model(tmp / "registry", 2)
    # newest in the registry is v2: the alias (v1) must win at start
    config = worker_config(tag, milvus_server_uri, tmp, model_version=None)
    gen = SyntheticStream(f"{tag}-", tmp / "images", seed=3, inline_fraction=0.0)
    try:
        yield config, gen, tag
    finally:
        vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, prefix=config.milvus_prefix)
        vs.purge()
        vs.close()
        with GraphStore(
            config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
        ) as gs:
            gs.delete_by_prefix(f"{tag}-")
        admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(tag)])
        admin.close()


def kcat_produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    subprocess.run(
        ["kcat", "-b", bootstrap, "-t", topic, "-P"],
        input=b"\n".join(lines) + b"\n",
        check=True,
        timeout=60,
    )


def pinclip_produce(config: WorkerConfig, topic: str, line: bytes) -> None:
    env = {**os.environ, "PINCLIP_KAFKA_BOOTSTRAP": config.kafka_bootstrap}
    cli = [sys.executable, "-c", "from pinclip.cli import main; main()"]
    subprocess.run([*cli, "produce", "-", "--topic", topic], input=line, env=env, check=True)


def produce_until(
    producer: EventProducer, gen: SyntheticStream, progress: StreamProgress, versions: list[int]
) -> NewPin:
    """Send one pin at a time until one is embedded with exactly `versions` (the update took)."""
    deadline = datetime.now(UTC).timestamp() + WAIT_S
    while datetime.now(UTC).timestamp() < deadline:
        pin = next(gen.new_pins(1))
        producer.send(pin)
        producer.flush()
        progress.wait_until(lambda p, pid=pin.pin_id: pid in p.embedded, WAIT_S)
        if progress.embedded[pin.pin_id].model_versions == versions:
            return pin
    raise AssertionError(f"no pin was embedded with versions {versions}")


def test_candidate_dual_writes_and_promotion_switches(setup: Any) -> None:
    config, gen, _ = setup
    dim = 32
    vs = VectorStore(
        config.milvus_uri, alias=config.milvus_alias, dim=dim, prefix=config.milvus_prefix
    )
    # A system live on v1; v2 is already in the registry but not announced. The worker must
    # start on the alias's version, not on the newest in the registry.
    vs.ensure_version(1)
    vs.switch_alias(1)
    worker = WorkerProcess(config).start()
    try:
        with StreamProgress(config) as progress:
            producer = EventProducer(config.kafka_bootstrap, config.topics)
            # kcat, a client no one here wrote, produces plain JSON lines
            first = list(gen.new_pins(5))
            kcat_produce(
                config.kafka_bootstrap, config.topics.created, [p.to_json_bytes() for p in first]
            )
            assert progress.wait_until(lambda p: len(p.embedded) >= 5, WAIT_S)
            assert all(progress.embedded[p.pin_id].model_versions == [1] for p in first)

            candidate = model_update_for(config.registry_url, 2, "candidate")
            pinclip_produce(config, config.topics.model_updates, candidate.to_json_bytes())
            produce_until(producer, gen, progress, [1, 2])
            dual = list(gen.new_pins(10))
            producer.send_many(dual)
            producer.flush()
            ids = [p.pin_id for p in dual]
            assert progress.wait_until(lambda p: all(i in p.embedded for i in ids), WAIT_S)
            assert all(progress.embedded[i].model_versions == [1, 2] for i in ids)
            assert {p.pin_id for p in vs.get(ids, version=1)} == set(ids)
            in_v2 = {p.pin_id: p for p in vs.get(ids, version=2)}
            assert set(in_v2) == set(ids) and all(p.model_version == 2 for p in in_v2.values())
            assert vs.live_version() == 1  # the worker never moves the alias for a candidate

            # A restarted worker replays model.updates before taking pins: the very first pin it
            # writes goes to both versions again.
            worker.stop()
            worker = WorkerProcess(config).start()
            restarted = next(gen.new_pins(1))
            producer.send(restarted)
            producer.flush()
            assert progress.wait_until(lambda p: restarted.pin_id in p.embedded, WAIT_S)
            assert progress.embedded[restarted.pin_id].model_versions == [1, 2]

            vs.switch_alias(2)  # what the backfill does once v2 is full
            producer.send(model_update_for(config.registry_url, 2, "promoted"))
            producer.flush()
            produce_until(producer, gen, progress, [2])
            after = list(gen.new_pins(5))
            producer.send_many(after)
            producer.flush()
            late = [p.pin_id for p in after]
            assert progress.wait_until(lambda p: all(i in p.embedded for i in late), WAIT_S)
            assert all(progress.embedded[i].model_versions == [2] for i in late)
            assert vs.get(late, version=1) == []
            assert {p.pin_id for p in vs.get(late)} == set(late)  # searchable through the alias
            producer.close()
    finally:
        worker.stop()
        vs.close()
