"""A Milvus outage mid-stream: the worker waits (no PinEmbedded, no dead letters), and when
Milvus is back every pin produced during the outage becomes searchable — nothing dropped.

Uses its own milvus-lite gRPC server (a real Milvus API on a private port and data dir) so it
can be stopped and restarted without touching the shared services.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from graph_store import GraphStore
from streams.config import WorkerConfig
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAIT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiteServer:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("milvus-lite") or str(
            Path(__import__("sys").executable).parent / "milvus-lite"
        )
        self.process = subprocess.Popen(
            [binary, "server", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("milvus-lite server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def outage_setup(
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
    tmp_path: Path,
) -> Iterator[tuple[WorkerConfig, LiteServer, str]]:
    export_tiny_model(tmp_path / "registry", 1)
    tag = "outage" + uuid.uuid4().hex[:8]
    server = LiteServer(tmp_path / "milvus", free_port())
    server.start()
    config = worker_config(tag, f"http://127.0.0.1:{server.port}", tmp_path)
    try:
        yield config, server, tag
    finally:
        server.stop()
        with GraphStore(
            config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
        ) as gs:
            gs.delete_by_prefix(f"{tag}-")
        admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(tag)])
        admin.close()


def test_milvus_outage_is_waited_out_without_loss(
    outage_setup: tuple[WorkerConfig, LiteServer, str], tmp_path: Path
) -> None:
    config, server, tag = outage_setup
    gen = SyntheticStream(f"{tag}-", tmp_path / "images", seed=1)
    with WorkerProcess(config), StreamProgress(config) as progress:
        producer = EventProducer(config.kafka_bootstrap, config.topics)
        before = list(gen.new_pins(10))
        producer.send_many(before)
        producer.flush()
        assert progress.wait_until(lambda p: len(p.embedded) >= 10, WAIT_S)

        server.stop()  # Milvus goes away mid-stream
        during = list(gen.new_pins(20))
        producer.send_many(during)
        producer.flush()
        progress.wait_until(lambda p: False, 5.0)  # give the worker time to (not) act
        assert len(progress.embedded) == 10
        assert progress.dead == []  # an outage is not the input's fault

        server.start()  # same data dir, same port
        ids = [p.pin_id for p in during]
        assert progress.wait_until(lambda p: all(i in p.embedded for i in ids), WAIT_S)
        assert progress.dead == []
        producer.close()
    vs = VectorStore(
        config.milvus_uri, alias=config.milvus_alias, dim=32, prefix=config.milvus_prefix
    )
    try:
        found = {p.pin_id for p in vs.get([p.pin_id for p in before + during])}
        assert found == {p.pin_id for p in before + during}
    finally:
        vs.close()


def test_graceful_stop_in_the_middle_of_a_stuck_batch_loses_nothing(
    outage_setup: tuple[WorkerConfig, LiteServer, str], tmp_path: Path
) -> None:
    """The case `Stream.take()` gets wrong (it acks in a `finally`): SIGTERM while a batch
    waits for Milvus. The batch must not be committed, so the next worker writes it."""
    config, server, tag = outage_setup
    gen = SyntheticStream(f"{tag}-", tmp_path / "images", seed=2)
    producer = EventProducer(config.kafka_bootstrap, config.topics)
    with StreamProgress(config) as progress:
        worker = WorkerProcess(config).start()
        try:
            first = next(gen.new_pins(1))
            producer.send(first)
            producer.flush()
            assert progress.wait_until(lambda p: first.pin_id in p.embedded, WAIT_S)
            server.stop()
            stuck = list(gen.new_pins(15))
            producer.send_many(stuck)
            producer.flush()
            progress.wait_until(lambda p: False, 5.0)  # the batch is now retrying
            code = worker.stop()  # SIGTERM: Faust stops and commits acked offsets only
            assert code is not None and code != -signal.SIGKILL  # it stopped by itself
        finally:
            worker.stop()
        assert not any(p.pin_id in progress.embedded for p in stuck)
        server.start()
        with WorkerProcess(config):
            ids = [p.pin_id for p in stuck]
            assert progress.wait_until(lambda p: all(i in p.embedded for i in ids), WAIT_S)
        assert progress.dead == []
    producer.close()
