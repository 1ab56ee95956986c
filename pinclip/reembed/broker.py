"""The Kafka side of a re-embed: its two topics, the progress reader, the group's offsets.

Two topics per version: the work topic (`partitions` partitions, one consumer group reads it)
and the progress topic (one partition: plans and item results, read whole by the coordinator and
by every worker deciding whether to stop).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pinclip.reembed.work import (
    BadWorkRecord,
    Progress,
    group_id,
    parse,
    progress_topic,
    work_topic,
)
from streams.config import WorkerConfig

log = structlog.get_logger("reembed")


@dataclass(frozen=True)
class ReembedTopics:
    """Names of one version's re-embed topics and group, from the deployment's settings."""

    bootstrap: str
    work: str
    progress: str
    group: str
    partitions: int
    replication: int = 1

    @classmethod
    def of(cls, config: WorkerConfig, version: int) -> ReembedTopics:
        """Version `version`'s topics and group under the deployment's settings."""
        return cls(
            config.kafka_bootstrap,
            work_topic(config.topics.reembed, version),
            progress_topic(config.topics.reembed, version),
            group_id(config.consumer_group, version),
            config.topic_partitions,
            config.topic_replication,
        )

    def ensure(self, timeout_s: float = 60.0) -> None:
        """Create both topics if missing (idempotent: a concurrent creator is not an error)."""
        admin = _admin(self.bootstrap, timeout_s)
        try:
            existing = set(admin.list_topics())
            wanted = {self.work: self.partitions, self.progress: 1}
            for name, partitions in wanted.items():
                if name in existing:
                    continue
                try:
                    admin.create_topics([NewTopic(name, partitions, self.replication)])
                    log.info("reembed.topic_created", topic=name, partitions=partitions)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
        _wait_for_partitions(self.bootstrap, self.work, timeout_s)

    def producer(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", retries=5, linger_ms=5)

    def committed(self) -> dict[int, int | None]:
        """The group's committed offset per work partition (None: nothing committed yet)."""
        admin = _admin(self.bootstrap, 30.0)
        try:
            offsets = admin.list_group_offsets(self.group).get(self.group, {})
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise
            return {}
        finally:
            admin.close()
        return {
            tp.partition: (meta.offset if meta.offset >= 0 else None)
            for tp, meta in offsets.items()
            if tp.topic == self.work
        }


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _wait_for_partitions(bootstrap: str, topic: str, timeout_s: float) -> None:
    """A topic just created may take a moment to have leaders; producing before that fails."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no partitions after {timeout_s}s")
            consumer.topics()  # refresh metadata
            time.sleep(0.2)
    finally:
        consumer.close()


class ProgressReader:
    """Reads one version's progress topic from its start, incrementally (one partition)."""

    def __init__(self, topics: ReembedTopics, version: int, model: str = "") -> None:
        self.progress = Progress(version, model)
        self._tp = TopicPartition(topics.progress, 0)
        self._consumer = KafkaConsumer(
            bootstrap_servers=topics.bootstrap, group_id=None, enable_auto_commit=False
        )
        self._consumer.assign([self._tp])
        self._consumer.seek_to_beginning(self._tp)

    def refresh(self, timeout_s: float = 30.0) -> Progress:
        """Everything on the topic up to its end offset now."""
        end = self._consumer.end_offsets([self._tp])[self._tp]
        deadline = time.monotonic() + timeout_s
        while self._consumer.position(self._tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {self._tp.topic} took more than {timeout_s}s")
            for records in self._consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        parsed = parse(record.value)
                    except BadWorkRecord as exc:  # not ours: never counts as progress
                        log.warning(
                            "reembed.bad_progress_record", offset=record.offset, why=str(exc)
                        )
                        continue
                    self.progress.add(parsed)
        return self.progress

    def close(self) -> None:
        self._consumer.close()
