"""Kafka is real: partitions, keyed JSON, consumer-group commits survive a consumer restart,
and a client nobody here wrote (kcat) interoperates."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

pytestmark = pytest.mark.integration

MESSAGES = 1_000
PARTITIONS = 3


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
        value_deserializer=lambda b: json.loads(b),
    )


def _drain(consumer: KafkaConsumer, expected: int | None = None) -> list[dict[str, object]]:
    """Poll until `expected` records arrived (or, with None, until the topic stays quiet)."""
    records: list[dict[str, object]] = []
    quiet_polls = 0
    while quiet_polls < 3 and (expected is None or len(records) < expected):
        batch = consumer.poll(timeout_ms=2_000)
        got = [r for rs in batch.values() for r in rs]
        quiet_polls = 0 if got else quiet_polls + 1
        records.extend({"key": r.key.decode(), "partition": r.partition, **r.value} for r in got)
    return records


def test_keyed_json_is_partitioned_consumed_once_and_not_redelivered(
    kafka_bootstrap: str, topic: str
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
        acks="all",
    )
    for i in range(MESSAGES):
        producer.send(topic, key=f"pin-{i % 50}", value={"seq": i, "title": f"pin {i}"})
    producer.flush()
    producer.close()

    group = f"smoke-{uuid.uuid4().hex[:8]}"
    first = _consumer(kafka_bootstrap, topic, group)
    records = _drain(first, expected=MESSAGES)
    first.commit()
    first.close()

    assert sorted(int(str(r["seq"])) for r in records) == list(range(MESSAGES))
    assert {r["partition"] for r in records} == set(range(PARTITIONS))
    partitions_of_key: dict[object, set[object]] = {}
    for r in records:
        partitions_of_key.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key moved partitions"

    restarted = _consumer(kafka_bootstrap, topic, group)
    redelivered = _drain(restarted)
    restarted.close()
    assert redelivered == []


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat missing: apt-get install -y kcat")
def test_lines_produced_by_kcat_are_read_by_kafka_python(kafka_bootstrap: str, topic: str) -> None:
    lines = [json.dumps({"pin_id": f"kcat-{i}", "title": f"from kcat {i}"}) for i in range(20)]
    subprocess.run(
        ["kcat", "-b", kafka_bootstrap, "-t", topic, "-P", "-K", "|"],
        input="".join(f"pin-{i}|{line}\n" for i, line in enumerate(lines)),
        text=True,
        check=True,
        timeout=30,
    )
    consumer = _consumer(kafka_bootstrap, topic, f"kcat-{uuid.uuid4().hex[:8]}")
    records = _drain(consumer, expected=len(lines))
    consumer.close()
    assert sorted(str(r["pin_id"]) for r in records) == sorted(f"kcat-{i}" for i in range(20))
    assert {r["key"] for r in records} == {f"pin-{i}" for i in range(20)}
