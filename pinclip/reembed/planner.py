"""Turn the graph into re-embed work: pin-id ranges on the work topic, then one `Planned`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Protocol

import structlog
from kafka import KafkaConsumer, TopicPartition

from pinclip.reembed.broker import ReembedTopics
from pinclip.reembed.work import Planned, WorkItem, partition_of

log = structlog.get_logger("reembed")


class PinKey(Protocol):
    @property
    def pin_id(self) -> str: ...


class PinPages(Protocol):
    """graph_store.GraphStore's paging, as the planner uses it."""

    def iter_pins(
        self, page_size: int = ..., *, id_prefix: str = ...
    ) -> Iterator[Sequence[PinKey]]: ...


def plan_items(version: int, plan: str, pages: Iterator[Sequence[PinKey]]) -> Iterator[WorkItem]:
    """One item per graph page: the page's first and last pin_id bound it."""
    for seq, page in enumerate(p for p in pages if p):
        yield WorkItem(
            plan=plan,
            version=version,
            seq=seq,
            first=page[0].pin_id,
            last=page[-1].pin_id,
            pins=len(page),
        )


def publish_plan(
    topics: ReembedTopics,
    version: int,
    graph: PinPages,
    *,
    item_size: int = 256,
    id_prefix: str = "",
    model: str = "",
) -> Planned:
    """Produce every item, wait for the broker's acks, read the end offsets, record the plan.

    A coordinator that dies before the `Planned` record is on the broker plans again under a new
    plan id; the items of the unfinished plan are still embedded (harmless: upserts), and only
    the new plan's results count.
    """
    plan = uuid.uuid4().hex
    partitions = _partitions(topics)
    producer = topics.producer()
    items = pins = 0
    try:
        for item in plan_items(version, plan, graph.iter_pins(item_size, id_prefix=id_prefix)):
            partition = partitions[partition_of(item.seq, len(partitions))]
            producer.send(topics.work, value=item.to_bytes(), partition=partition)
            items, pins = items + 1, pins + item.pins
        producer.flush(timeout=120)
        planned = Planned(
            plan=plan,
            version=version,
            model=model,
            items=items,
            pins=pins,
            end_offsets=_end_offsets(topics, partitions),
        )
        producer.send(topics.progress, value=planned.to_bytes(), partition=0).get(timeout=60)
    finally:
        producer.close()
    log.info("reembed.planned", version=version, plan=plan, items=items, pins=pins)
    return planned


def _partitions(topics: ReembedTopics) -> list[int]:
    """The work topic's partitions as the broker has them (it may predate the setting)."""
    consumer = KafkaConsumer(bootstrap_servers=topics.bootstrap, group_id=None)
    try:
        return sorted(consumer.partitions_for_topic(topics.work) or ())
    finally:
        consumer.close()


def _end_offsets(topics: ReembedTopics, partitions: list[int]) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=topics.bootstrap, group_id=None)
    try:
        wanted = [TopicPartition(topics.work, p) for p in partitions]
        return {tp.partition: int(end) for tp, end in consumer.end_offsets(wanted).items()}
    finally:
        consumer.close()
