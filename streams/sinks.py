"""Thin adapters from the store-neutral write plans to the vector and graph sinks.

The retry contract (streams.retry, streams.errors): an outage is retried with backoff until the
store is back — the stream waits, nothing is acked, nothing is dropped. A batch the store refuses
deterministically (an invalid row) is split until only the offending rows are refused; they come
back to the caller, who dead-letters them. A fatal error (a bug) propagates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from streams.errors import DeterministicError
from streams.pipeline import PinNodeWrite, RetryPolicy, SaveWrite, VectorWrite
from streams.ports import GraphSink, VectorSink
from streams.retry import isolate_refused, retry_blocking


class StoreWriter:
    """Writes plans into Milvus (one collection per version) and Neo4j; all idempotent."""

    def __init__(
        self, vector_store: VectorSink, graph_store: GraphSink, policy: RetryPolicy
    ) -> None:
        self.vectors = vector_store
        self.graph = graph_store
        self.policy = policy

    async def _retry(self, sink: str, call: Callable[[], object], **context: Any) -> None:
        await retry_blocking(call, sink=sink, policy=self.policy, **context)

    async def write_vectors(
        self, version: int, rows: Sequence[VectorWrite]
    ) -> list[tuple[VectorWrite, DeterministicError]]:
        """Upsert rows; returns (row, why) for each row the store refused."""
        by_id = {row.pin_id: row for row in rows}

        async def upsert(items: list[Any]) -> None:
            await self._retry(
                "milvus", lambda: self.vectors.upsert(version, items), version=version
            )

        refused = await isolate_refused([_pin_vector(row) for row in rows], upsert)
        return [(by_id[item.pin_id], why) for item, why in refused]

    async def write_pins(
        self, nodes: Sequence[PinNodeWrite], saves: Sequence[SaveWrite]
    ) -> list[tuple[PinNodeWrite | SaveWrite, DeterministicError]]:
        """Pin nodes, then their save edges; returns what Neo4j refused (deterministically)."""
        from graph_store import PinNode

        async def upsert(pins: list[Any]) -> None:
            await self._retry("neo4j", lambda: self.graph.upsert_pins(pins), pins=len(pins))

        written_at = datetime.now(UTC)  # kept as the pin's embedded_at on its first write
        pins = [PinNode(**_fields(n), embedded_at=written_at) for n in nodes]
        by_id = {n.pin_id: n for n in nodes}
        refused: list[tuple[PinNodeWrite | SaveWrite, DeterministicError]] = []
        if pins:
            refused += [(by_id[p.pin_id], why) for p, why in await isolate_refused(pins, upsert)]
        refused += await self.write_saves(saves)
        return refused

    async def write_saves(
        self, saves: Sequence[SaveWrite]
    ) -> list[tuple[SaveWrite, DeterministicError]]:
        """Save edges (MERGE: replays are harmless); returns what Neo4j refused."""
        from graph_store import Save

        async def add(edges: list[Any]) -> None:
            await self._retry("neo4j", lambda: self.graph.add_saves(edges), saves=len(edges))

        edges = [(s, Save(s.pin_id, s.board_id, s.user_id, s.ts)) for s in saves]
        if not edges:
            return []
        refused = await isolate_refused(edges, lambda pairs: add([e for _, e in pairs]))
        return [(save, why) for (save, _), why in refused]


def _pin_vector(row: VectorWrite) -> Any:
    from vector_store import PinVector

    return PinVector(**_fields(row))


def _fields(plan_item: Any) -> dict[str, Any]:
    """A write-plan dataclass as keyword arguments of the store's own record type (the plans
    in streams.pipeline use the stores' field names; no deep copy of the vectors)."""
    return {f.name: getattr(plan_item, f.name) for f in dataclasses.fields(plan_item)}
