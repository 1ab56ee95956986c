"""Thin adapters from the store-neutral write plans to VectorStore / GraphStore, with retry.

Store calls are synchronous drivers, so they run in a thread: the event loop (and with it the
Kafka heartbeats) keeps going while Milvus or Neo4j is slow. A store that is down is retried
with backoff forever — the stream waits, nothing is acked, nothing is dropped. A row the store
refuses as invalid (ValueError) is not an outage: it is isolated and dead-lettered instead.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from streams.metrics import WRITE_RETRIES
from streams.pipeline import PinNodeWrite, RetryPolicy, SaveWrite, VectorWrite

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def retry_forever(
    operation: Callable[[], T], *, sink: str, policy: RetryPolicy, **context: Any
) -> T:
    """Run a blocking store call in a thread until it succeeds; ValueError is not retried."""
    attempt = 0
    while True:
        try:
            return await asyncio.to_thread(operation)
        except ValueError:
            raise
        except Exception as exc:
            attempt += 1
            delay = policy.delay(attempt, random.random())
            WRITE_RETRIES.labels(sink).inc()
            log.warning(
                "store_write_failed_retrying",
                sink=sink,
                attempt=attempt,
                retry_in_s=round(delay, 3),
                error=f"{type(exc).__name__}: {exc}",
                **context,
            )
            await asyncio.sleep(delay)


class StoreWriter:
    """Writes plans into Milvus (one collection per version) and Neo4j; all idempotent."""

    def __init__(self, vector_store: Any, graph_store: Any, policy: RetryPolicy) -> None:
        self.vectors = vector_store
        self.graph = graph_store
        self.policy = policy

    async def write_vectors(
        self, version: int, rows: Sequence[VectorWrite]
    ) -> list[tuple[VectorWrite, str]]:
        """Upsert rows; returns (row, error) for rows the store refused as invalid."""
        from vector_store import PinVector

        def pin_vector(row: VectorWrite) -> Any:
            return PinVector(
                pin_id=row.pin_id,
                pin=row.pin,
                model_version=row.model_version,
                created_at=row.created_at,
                board_ids=row.board_ids,
                is_ad=row.is_ad,
            )

        batch = [pin_vector(row) for row in rows]
        try:
            await retry_forever(
                lambda: self.vectors.upsert(version, batch),
                sink="milvus",
                policy=self.policy,
                version=version,
                rows=len(batch),
            )
            return []
        except ValueError:
            pass
        refused: list[tuple[VectorWrite, str]] = []
        for row, item in zip(rows, batch, strict=True):  # isolate the invalid rows
            try:
                await retry_forever(
                    functools.partial(self.vectors.upsert, version, [item]),
                    sink="milvus",
                    policy=self.policy,
                    pin_id=row.pin_id,
                )
            except ValueError as exc:
                refused.append((row, str(exc)))
        return refused

    async def write_pins(self, nodes: Sequence[PinNodeWrite], saves: Sequence[SaveWrite]) -> None:
        from graph_store import PinNode

        written_at = datetime.now(UTC)  # kept as the pin's embedded_at on its first write
        pins = [
            PinNode(
                pin_id=n.pin_id,
                title=n.title,
                description=n.description,
                image_uri=n.image_uri,
                created_at=n.created_at,
                user_id=n.user_id,
                is_ad=n.is_ad,
                embedded_at=written_at,
            )
            for n in nodes
        ]
        if pins:
            await retry_forever(
                lambda: self.graph.upsert_pins(pins),
                sink="neo4j",
                policy=self.policy,
                pins=len(pins),
            )
        await self.write_saves(saves)

    async def write_saves(self, saves: Sequence[SaveWrite]) -> None:
        from graph_store import Save

        edges = [Save(s.pin_id, s.board_id, s.user_id, s.ts) for s in saves]
        if edges:
            await retry_forever(
                lambda: self.graph.add_saves(edges),
                sink="neo4j",
                policy=self.policy,
                saves=len(edges),
            )
