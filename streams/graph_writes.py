"""Neo4j writes of every agent coalesced: one transaction per batch, whoever asked.

The new-pin path writes pin nodes and their first saves, the repin agent writes saves; each
Neo4j transaction costs a commit (a log flush) and a round of locks whatever its size, so the
writes that arrive while one transaction runs go into the next one together (an
`encoder.batcher.MicroBatcher` with no added delay: coalescing only ever happens under load).

Error contract (streams.retry, rel's): each caller retries its own transient failures and
isolates its own refused rows. A coalesced transaction that fails for a non-transient reason is
replayed item by item, so one caller's bad row never fails a row of another.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from encoder.batcher import MicroBatcher
from graph_store.models import PinNode, Save
from streams import stages
from streams.errors import DeterministicError, classify
from streams.pipeline import RetryPolicy
from streams.ports import GraphSink
from streams.retry import isolate_refused, retry_transient

Boards = dict[str, list[str]]


@dataclass(frozen=True)
class GraphWrite:
    """Pins and saves that must be written together (saves of a pin after the pin)."""

    pins: tuple[PinNode, ...]
    saves: tuple[Save, ...]


class GraphWriter:
    """`await write(pins, saves)` → (boards of each pin, refused pins by id)."""

    def __init__(self, graph: GraphSink, policy: RetryPolicy, max_items: int = 64) -> None:
        self.graph = graph
        self.policy = policy
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="neo4j")
        self._batcher: MicroBatcher[GraphWrite, Boards] = MicroBatcher(
            self._write_many, max_items, 0.0, 4096, 1, self._pool, name="neo4j-writes"
        )

    def _write_many(self, items: list[GraphWrite]) -> list[Boards | Exception]:
        """One transaction for all items (runs in the writer thread)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        pins = [p for item in items for p in item.pins]
        try:
            boards = self.graph.write_batch(pins, [s for item in items for s in item.saves])
            results: list[Boards | Exception] = [_boards_of(item, boards) for item in items]
        except Exception as exc:
            if len(items) == 1 or classify(exc) == "transient":
                raise  # every caller retries (transient) or isolates (its own rows) itself
            results = []
            for item in items:  # find whose rows were refused; the others are written
                try:
                    results.append(_boards_of(item, self.graph.write_batch(item.pins, item.saves)))
                except Exception as one:
                    if classify(one) == "transient":
                        raise
                    results.append(one)
        finally:
            stages.record(
                "neo4j_write", len(pins), time.perf_counter() - wall, time.thread_time() - cpu
            )
        return results

    async def write(
        self, pins: Sequence[PinNode], saves: Sequence[Save] = ()
    ) -> tuple[Boards, dict[str, DeterministicError]]:
        """Write pins (each with its saves); refused pins come back by id, saves of unknown
        pins (repins) are grouped under their pin id too."""
        groups: dict[str, tuple[list[PinNode], list[Save]]] = {}
        for pin in pins:
            groups.setdefault(pin.pin_id, ([], []))[0].append(pin)
        for save in saves:
            groups.setdefault(save.pin_id, ([], []))[1].append(save)
        boards: Boards = {}

        async def attempt(ids: list[str]) -> None:
            item = GraphWrite(
                tuple(p for i in ids for p in groups[i][0]),
                tuple(s for i in ids for s in groups[i][1]),
            )
            boards.update(
                await retry_transient(
                    lambda: self._batcher.submit(item),
                    sink="neo4j",
                    policy=self.policy,
                    pins=len(item.pins),
                    saves=len(item.saves),
                )
            )

        refused = await isolate_refused(list(groups), attempt)
        return boards, dict(refused)

    async def close(self) -> None:
        await self._batcher.close()
        self._pool.shutdown(wait=False)


def _boards_of(item: GraphWrite, boards: Boards) -> Boards:
    return {pin.pin_id: boards.get(pin.pin_id, []) for pin in item.pins}
