"""Repins: Repin records → saves in Neo4j, and dead letters — the repin agent's handler.

The same shape as `streams.new_pins`: a handler built once the stores are up, holding what it
writes through (the worker's one `GraphWriter`, shared with the new-pin path so their Neo4j
writes coalesce into one transaction under load), called with a batch of raw records and
returning what to emit. Every save of the batch is written, repeats included (the graph store
coalesces them per edge); a save Neo4j refuses dead-letters every record of that pin's saves in
the batch, and the other pins' saves are written.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams import metrics
from streams.events import Repin
from streams.graph_writes import GraphWriter
from streams.new_pins import BatchOutcome
from streams.pipeline import SourceRecord, parse_records, plan_repin_writes, rejected


class RepinHandler:
    """`await handle(records)` → the batch's dead letters (repins emit no PinEmbedded)."""

    def __init__(self, graph: GraphWriter) -> None:
        self.graph = graph

    async def handle(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        accepted, dead = parse_records(records, Repin)
        saves = plan_repin_writes(accepted)
        _, refused = await self.graph.write([], saves)
        metrics.EVENTS_OUT.labels("save").inc(sum(1 for s in saves if s.pin_id not in refused))
        for item in accepted:  # every record of a refused pin's saves in this batch
            why = refused.get(item.event.pin_id)
            if why is not None:
                dead.append(rejected(item.record, why, item.event.pin_id))
        return BatchOutcome(dead=dead)
