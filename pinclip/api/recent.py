"""The gallery's "recently embedded" strip: PinEmbedded events, read as the stream emits them.

A group-less kafka-python consumer in a daemon thread (kafka-python is synchronous and not
thread-safe, so one thread owns it) reads the embedded-pins topic starting a little before its
end and keeps the newest pins in a bounded deque. Nothing is committed; restarting the API just
re-reads the tail. Kafka being away only empties the strip: the thread backs off and retries,
and /ready reports Kafka as a non-required check.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import structlog
from pydantic import ValidationError

from streams.events import PinEmbedded

log = structlog.get_logger(__name__)


class KafkaRecentFeed:
    def __init__(self, bootstrap: str, topic: str, size: int = 24) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.size = size
        self._pins: deque[PinEmbedded] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def describe(self) -> str:
        return f"kafka topic {self.topic}"

    def latest(self, limit: int) -> list[PinEmbedded]:
        """Newest first, one entry per pin (a re-embedded pin moves to the front)."""
        with self._lock:
            pins = list(self._pins)
        newest: dict[str, PinEmbedded] = {}
        for event in pins:
            if event.pin_id not in newest or event.embedded_at > newest[event.pin_id].embedded_at:
                newest[event.pin_id] = event
        ordered = sorted(newest.values(), key=lambda e: (e.embedded_at, e.pin_id), reverse=True)
        return ordered[:limit]

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="recent-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    async def check(self) -> None:
        """Raises OSError unless a bootstrap server accepts a TCP connection."""
        errors: list[str] = []
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), timeout=2.0
                )
            except (OSError, TimeoutError, ValueError) as exc:
                errors.append(f"{server}: {type(exc).__name__}")
                continue
            writer.close()
            return
        raise OSError("no bootstrap server reachable: " + "; ".join(errors))

    # --- the consumer thread ---------------------------------------------------------------

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._consume()
                backoff = 1.0
            except Exception as exc:  # Kafka away or the topic missing: back off, keep trying
                log.debug("recent_feed_retry", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _consume(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=10_000,
        )
        try:
            partitions = self._wait_for_partitions(consumer, TopicPartition)
            if not partitions:
                return
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(starts[tp], ends[tp] - self.size))
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=500).values():
                    self._add(records)
        finally:
            consumer.close()

    def _wait_for_partitions(self, consumer: Any, topic_partition: Any) -> list[Any]:
        while not self._stop.is_set():
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [topic_partition(self.topic, p) for p in sorted(found)]
            self._stop.wait(2.0)  # topic not created yet: no pin embedded so far
        return []

    def _add(self, records: list[Any]) -> None:
        events = []
        for record in records:
            try:
                events.append(PinEmbedded.model_validate_json(record.value))
            except ValidationError:
                continue  # not ours to judge: the strip shows what it understands
        with self._lock:
            self._pins.extend(events)
