"""A worker deployed before any producer: its topics do not exist yet when it starts.

Without declaring them first the consumer "ignores the missing topic" until its next metadata
refresh (minutes) and new pins sit unprocessed; this test fails in that case.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from streams.config import WorkerConfig
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from streams.topics import wanted_topics
from vector_store import VectorStore

pytestmark = [pytest.mark.integration]


def _wait_for_log(worker: WorkerProcess, needle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.alive(), f"worker exited; log: {worker.log_path.read_text()[-2000:]}"
        if worker.log_path.exists() and needle in worker.log_path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not logged within {timeout_s}s")


def test_worker_started_before_its_topics_exist_consumes_new_pins(
    kafka_bootstrap: str,
    neo4j_settings: Any,
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
    tmp_path: Path,
) -> None:
    tag = "fresh" + uuid.uuid4().hex[:8]
    dim = export_tiny_model(tmp_path / "registry", 1)
    config = worker_config(tag, str(tmp_path / "milvus.db"), tmp_path, topic_partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert not set(wanted_topics(config)) & set(admin.list_topics())
        pins = list(SyntheticStream(f"{tag}-", tmp_path / "images", seed=3).new_pins(5))
        with WorkerProcess(config) as worker, StreamProgress(config) as progress:
            _wait_for_log(worker, "worker_ready", 120)
            with EventProducer(kafka_bootstrap, config.topics) as producer:
                producer.send_many(pins)
                producer.flush()
            assert progress.wait_until(lambda p: len(p.embedded) >= len(pins), 60), (
                f"only {len(progress.embedded)} of {len(pins)} embedded"
            )
        assert {p.pin_id for p in pins} == set(progress.embedded)
        store = VectorStore(
            config.milvus_uri, alias=config.milvus_alias, dim=dim, prefix=config.milvus_prefix
        )
        try:
            assert {v.pin_id for v in store.get([p.pin_id for p in pins])} == {
                p.pin_id for p in pins
            }
        finally:
            store.close()
    finally:
        admin.delete_topics([t for t in wanted_topics(config) if t in admin.list_topics()])
        admin.close()
        from graph_store import GraphStore

        with GraphStore(neo4j_settings.uri, neo4j_settings.user, neo4j_settings.password) as gs:
            gs.delete_by_prefix(f"{tag}-")
