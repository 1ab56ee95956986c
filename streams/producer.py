"""Producing events from Python (kafka-python): one call per event, JSON lines on the wire.

Events are keyed by pin_id so every event of a pin lands on the same partition (in order).
The same lines can be produced by any client, e.g. `kcat -b HOST:9092 -t pins.created -P`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer

from streams.config import Topics
from streams.events import Event
from streams.routes import route_of


class EventProducer:
    """`with EventProducer(bootstrap) as p: p.send(NewPin(...))` — sends each event to its
    type's topic (the route table, streams.routes); `flush()` (or leaving the block) waits
    until Kafka has acknowledged everything."""

    def __init__(self, bootstrap: str, topics: Topics | None = None, **kafka: Any) -> None:
        self.topics = topics or Topics()
        options: dict[str, Any] = {"acks": "all", "linger_ms": 5, "retries": 5}
        options.update(kafka)
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, **options)

    def topic_for(self, event: Event) -> str:
        """The input topic of the event's type (streams.routes); TypeError for an output."""
        return route_of(type(event)).topic(self.topics)

    def send(self, event: Event, topic: str | None = None) -> None:
        key = getattr(event, "pin_id", None)
        self.send_raw(topic or self.topic_for(event), event.to_json_bytes(), key)

    def send_many(self, events: Iterable[Event]) -> int:
        count = 0
        for event in events:
            self.send(event)
            count += 1
        return count

    def send_raw(self, topic: str, value: bytes | None, key: str | None = None) -> None:
        """Any bytes, unvalidated: for other producers' lines and for testing the dead letters."""
        self._producer.send(topic, value=value, key=key.encode() if key else None)

    def flush(self, timeout_s: float | None = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def key_of_line(line: bytes) -> str | None:
    """pin_id of a JSON line if it has one (for partitioning); None for anything else."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    pin_id = value.get("pin_id") if isinstance(value, dict) else None
    return pin_id if isinstance(pin_id, str) else None


def produce_lines(lines: Iterable[bytes | str], topic: str, producer: EventProducer) -> int:
    """Send each non-empty line as one record, as is (the worker validates and dead-letters)."""
    count = 0
    for line in lines:
        raw = line.encode() if isinstance(line, str) else line
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        producer.send_raw(topic, raw, key_of_line(raw))
        count += 1
    producer.flush()
    return count
