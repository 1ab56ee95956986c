"""A Testcontainers Kafka that speaks the apache/kafka image's contract (KAFKA_* variables read
by Kafka's own KafkaDockerWrapper, entry point /etc/kafka/docker/run), so the image compose/dev.yml
runs also serves the tests, and a locally built stand-in with the same contract can replace it.

Testcontainers' own KafkaContainer drives Confluent's scripts (/etc/confluent/docker/...), which
the Apache image does not have. What we keep from it is the technique: the host port is known only
after the container starts, so the container waits for a small file that carries the advertised
listener, written once the port is mapped.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

START_FILE = "/tmp/pinclip-kafka-advertised.env"
CLIENT_PORT = 9092
STARTED = re.compile(r"Kafka Server started")


class ApacheKafkaContainer(DockerContainer):
    """Single-node KRaft broker: `PLAINTEXT` for clients on the host, `BROKER` inside."""

    def __init__(
        self, image: str = "apache/kafka:3.9.1", heap: str = "-Xmx512m -Xms256m", **kwargs: Any
    ) -> None:
        super().__init__(image, **kwargs)
        self.with_exposed_ports(CLIENT_PORT)
        for key, value in {
            "KAFKA_NODE_ID": "1",
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
            "KAFKA_LISTENERS": "PLAINTEXT://:9092,BROKER://:29092,CONTROLLER://:9093",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
                "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            "KAFKA_HEAP_OPTS": heap,
        }.items():
            self.with_env(key, value)
        # wait for the advertised listener, then run the image's own entry point
        self.with_command(
            f'sh -c "while [ ! -f {START_FILE} ]; do sleep 0.1; done; . {START_FILE}; '
            'exec /etc/kafka/docker/run"'
        )

    def get_bootstrap_server(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(CLIENT_PORT)}"

    def start(self, timeout: float = 120) -> ApacheKafkaContainer:
        super().start()
        advertised = f"PLAINTEXT://{self.get_bootstrap_server()},BROKER://localhost:29092"
        self._put_file(START_FILE, f"export KAFKA_ADVERTISED_LISTENERS='{advertised}'\n".encode())
        LogMessageWaitStrategy(STARTED).with_startup_timeout(int(timeout)).wait_until_ready(self)
        return self

    def _put_file(self, path: str, content: bytes) -> None:
        archive = io.BytesIO()
        with tarfile.TarFile(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(name=path.lstrip("/"))
            info.size = len(content)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
        archive.seek(0)
        self.get_wrapped_container().put_archive("/", archive)
