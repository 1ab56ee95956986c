"""A single-node Apache Kafka broker in KRaft combined mode, run from Maven Central jars."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from pinclip.services import maven
from pinclip.services.base import Report, Service, ServiceError, java_or_fail, quiet_loggers

SLF4J_RELOAD4J = maven.Artifact("org.slf4j", "slf4j-reload4j", "1.7.36")


def server_properties(host: str, port: int, controller_port: int, log_dir: Path) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.retention.hours": "24",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def log4j_properties(log_dir: Path) -> str:
    """Broker logs go to a file; only warnings reach stdout (our .out log)."""
    return f"""log4j.rootLogger=INFO, file, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log_dir}/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


def new_cluster_id() -> str:
    """Kafka's format: 16 random bytes, URL-safe base64 without padding (as `random-uuid`).

    Like Kafka's own `Uuid.randomUuid()`, never one that starts with "-": the storage tool's
    argument parser takes such a value for an option (1 start in 64 failed that way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    name = "kafka"

    @property
    def _props(self) -> Path:
        return self.dir / "server.properties"

    @property
    def _log4j(self) -> Path:
        return self.dir / "log4j.properties"

    def ports(self) -> list[int]:
        return [self.config.kafka_port, self.config.kafka_controller_port]

    def address(self) -> str:
        return f"{self.config.host}:{self.config.kafka_port}"

    def requirements(self) -> None:
        java_or_fail()

    def _classpath(self) -> Path:
        return maven.fetch_classpath(
            self.config.cache_dir,
            "kafka",
            [
                maven.Artifact("org.apache.kafka", "kafka_2.13", self.config.kafka_version),
                SLF4J_RELOAD4J,
            ],
        )

    def prepare(self, report: Report) -> None:
        report(f"kafka: resolving {self.config.kafka_version} (Maven Central, cached)")
        lib = self._classpath()
        data = self.dir / "data"
        logs = self.dir / "logs"
        data.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        self._props.write_text(
            server_properties(
                self.config.host, self.config.kafka_port, self.config.kafka_controller_port, data
            )
        )
        self._log4j.write_text(log4j_properties(logs))
        id_file = self.dir / "cluster-id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        import subprocess

        report("kafka: formatting storage")
        result = subprocess.run(
            [
                *self._java_prefix(lib),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={id_file.read_text().strip()}",
                "-c",
                str(self._props),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.dir,
        )
        if result.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")

    def _java_prefix(self, lib: Path) -> list[str]:
        return [
            java_or_fail(),
            f"-Xmx{self.config.kafka_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self._log4j}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{lib}/*",
        ]

    def argv(self) -> list[str]:
        return [*self._java_prefix(self._classpath()), "kafka.Kafka", str(self._props)]

    def probe(self) -> bool:
        """A metadata request answered by the broker (not just a TCP accept)."""
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        with quiet_loggers("kafka"):
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=self.address(),
                    request_timeout_ms=3000,
                    connections_max_idle_ms=5000,
                )
            except (KafkaError, OSError, ValueError) as exc:
                self.last_probe_error = repr(exc)
                return False
            try:
                consumer.topics()
                return True
            except (KafkaError, OSError) as exc:
                self.last_probe_error = repr(exc)
                return False
            finally:
                consumer.close()

    def env(self) -> dict[str, str]:
        return {"PINCLIP_KAFKA_BOOTSTRAP": self.address()}
