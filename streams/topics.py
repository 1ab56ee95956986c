"""Create the worker's topics before it subscribes.

A consumer that subscribes to a topic that does not exist yet is told "ignoring missing topic"
and only notices the topic at its next metadata refresh (minutes). A worker deployed before
any producer would sit idle that long, so the worker declares its topics first.
"""

from __future__ import annotations

import time

import structlog
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streams.config import WorkerConfig
from streams.routes import topic_partitions

log = structlog.get_logger(__name__)


def wanted_topics(config: WorkerConfig) -> dict[str, int]:
    """Topic → partitions, for every route (streams.routes). model.updates has one partition:
    updates apply in order."""
    return topic_partitions(config.topics, config.topic_partitions)


def ensure_topics(config: WorkerConfig, timeout_s: float = 120.0) -> list[str]:
    """Create missing topics (idempotent); waits for the broker up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
            break
        except (KafkaConnectionError, KafkaError):  # no broker answering yet
            if time.monotonic() > deadline:
                raise
            log.warning("kafka_not_reachable", bootstrap=config.kafka_bootstrap, retry_in_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication_factor=config.topic_replication)
            for name, partitions in wanted_topics(config).items()
            if name not in existing
        ]
        created = []
        for topic in missing:  # one by one: a concurrent creator is not an error
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                if "TopicAlreadyExists" not in repr(exc):
                    raise
        if created:
            log.info("topics_created", topics=created)
        return created
    finally:
        admin.close()
