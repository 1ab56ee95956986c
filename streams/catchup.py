"""Has the worker processed what we just produced? — from Kafka alone, no worker API needed.

A producer marks the end offsets of the input topics before it sends and again after; the
worker's consumer group commits an offset only once the batch's Milvus and Neo4j writes and its
PinEmbedded / dead-letter sends succeeded (streams/app.py). So "the group's committed offsets
reached the second mark" means every one of our events is written or dead-lettered, and the
outcome topics, read from their own marks, say which.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from streams.config import Topics
from streams.events import DeadLetter, PinEmbedded
from streams.routes import group_inputs, outputs

Offsets = Mapping[TopicPartition, int]


def processed_between(start: Offsets, end: Offsets, committed: Offsets) -> tuple[int, int]:
    """(events processed, events produced) between the marks `start` and `end`.

    Per partition, the committed offset counts only inside [start, end): a backlog before our
    events is not our progress, and the group may already be past our end.
    """
    done = total = 0
    for tp, stop in end.items():
        begin = start.get(tp, 0)
        total += max(0, stop - begin)
        done += min(max(0, committed.get(tp, 0) - begin), max(0, stop - begin))
    return done, total


@dataclass
class Outcomes:
    """What the worker reported for a set of pins on pins.embedded and pins.dlq."""

    embedded: set[str] = field(default_factory=set)
    dead: list[DeadLetter] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for letter in self.dead:
            key = f"{letter.stage}/{letter.reason}"
            counts[key] = counts.get(key, 0) + 1
        return counts


class GroupCatchUp:
    """Offsets of the worker's input and output topics, and its group's committed offsets."""

    def __init__(self, bootstrap: str, group: str, topics: Topics) -> None:
        self.group, self.topics = group, topics
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def end_offsets(self, names: Iterable[str]) -> dict[TopicPartition, int]:
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(self._consumer.partitions_for_topic(name) or ())
        ]
        return dict(self._consumer.end_offsets(partitions)) if partitions else {}

    def inputs_end(self) -> dict[TopicPartition, int]:
        """End offsets of the topics the worker's group reads (streams.routes)."""
        self._consumer.topics()  # refresh metadata: topics may have just been created
        return self.end_offsets(group_inputs(self.topics))

    def outputs_end(self) -> dict[TopicPartition, int]:
        self._consumer.topics()
        return self.end_offsets(outputs(self.topics))

    def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets; empty while the group has none or its coordinator
        is not there yet (a fresh broker creates __consumer_offsets on first use)."""
        try:
            offsets = self._admin.list_group_offsets(self.group).get(self.group, {})
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise
            return {}
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    @staticmethod
    def topics_of(offsets: Offsets) -> set[str]:
        return {tp.topic for tp in offsets}

    def outcomes(self, since: Offsets, pin_ids: set[str], timeout_s: float = 120.0) -> Outcomes:
        """PinEmbedded and dead letters about `pin_ids` written after the marks `since`."""
        found = Outcomes()
        end = self.outputs_end()
        wanted = {tp: stop for tp, stop in end.items() if stop > since.get(tp, 0)}
        if not wanted:
            return found
        self._consumer.assign(list(wanted))
        for tp in wanted:
            self._consumer.seek(tp, since.get(tp, 0))
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < stop for tp, stop in wanted.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(self.topics_of(wanted))} took > {timeout_s}s")
            for tp, records in self._consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if record.offset >= wanted[tp]:
                        continue
                    self._collect(tp.topic, record.value, pin_ids, found)
        return found

    def _collect(self, topic: str, value: bytes, pin_ids: set[str], found: Outcomes) -> None:
        if topic == self.topics.embedded:
            event = PinEmbedded.model_validate_json(value)
            if event.pin_id in pin_ids:
                found.embedded.add(event.pin_id)
        else:
            letter = DeadLetter.model_validate_json(value)
            if letter.pin_id in pin_ids:
                found.dead.append(letter)

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def __enter__(self) -> GroupCatchUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
