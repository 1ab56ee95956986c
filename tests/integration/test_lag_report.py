"""The worker's lag report survives a rebalance: a partition revoked between listing the
assignment and reading its offsets is skipped, not raised (a Faust timer that raises crashes the
whole app — seen in the two-worker fault test). A real broker and aiokafka consumer, the client
Faust drives underneath."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from streams.app import partition_lags

pytestmark = pytest.mark.integration

RECORDS = 5


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"lag-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


async def test_a_partition_no_longer_held_is_skipped_and_the_held_one_reported(
    kafka_bootstrap: str, topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(RECORDS):
            await producer.send_and_wait(topic, f"pin-{i}".encode(), partition=0)
    finally:
        await producer.stop()
    held, revoked = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([held])  # as after a rebalance took partition 1 away
        await consumer.getmany(timeout_ms=2_000)  # a fetch sets the highwater
        with pytest.raises(Exception, match="not assigned"):  # what the timer used to let out
            await consumer.position(revoked)

        lags = await partition_lags(consumer, [held, revoked], processed={(topic, 0): 2})

        assert lags == {(topic, 0): RECORDS - 2}
        # offset known from processing: the highwater read is the one that fails, and is skipped
        assert await partition_lags(consumer, [revoked], processed={(topic, 1): 0}) == {}
    finally:
        await consumer.stop()
