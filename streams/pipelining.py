"""Overlap the stages of consecutive batches, keep them in order, batch by what is waiting.

The worker's new-pin path has three stages with different bottlenecks — prepare (fetch, decode,
encode: the CPU), write (Neo4j then Milvus: round trips) and finish (send PinEmbedded, ack:
Kafka). Run back to back, each batch waits for all three; with `StagedPipeline` batch N+1 is
encoded while batch N is written and batch N−1 is acknowledged.

- Order: every stage handles one batch at a time, in submission order, so offsets are acked in
  order and a pin's later event is never written before its earlier one.
- Adaptive batch size: the first stage takes *everything waiting* (up to `max_batch` by weight)
  as one batch. Idle, a batch is whatever just arrived (low latency); under load, submissions
  pile up while the encoder works and the next batch is larger (higher throughput).
- Backpressure: `submit` waits while `max_pending` weight is queued; between stages at most one
  batch waits (a queue of one), so memory stays bounded and Kafka fetching pauses upstream.
- Errors: an exception in any stage stops the pipeline and interrupts the task that opened it
  (the agent); leaving the `async with` raises it, so the agent fails and the worker process
  stops — unacked batches are replayed from the last commit (the at-least-once rule of
  streams/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Stage = Callable[[Any], Awaitable[Any]]


class StagedPipeline(Generic[T]):
    """`async with StagedPipeline(stages, ...) as p: await p.submit(item)` (see module doc)."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        max_batch: int,
        max_pending: int,
        weight: Callable[[T], int] = lambda item: 1,
    ) -> None:
        if not stages or max_batch < 1 or max_pending < 1:
            raise ValueError("need at least one stage, max_batch >= 1 and max_pending >= 1")
        self._stages = list(stages)
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._weight = weight
        self._pending: deque[T] = deque()
        self._pending_weight = 0
        self._changed = asyncio.Condition()
        self._queues: list[asyncio.Queue[Any]] = [asyncio.Queue(1) for _ in self._stages[1:]]
        self._tasks: list[asyncio.Task[None]] = []
        self._error: BaseException | None = None
        self._in_flight = 0  # batches taken and not yet through the last stage
        self._owner: asyncio.Task[Any] | None = None
        self._waking: asyncio.Future[None] | None = None

    async def __aenter__(self) -> StagedPipeline[T]:
        self._owner = asyncio.current_task()
        self._tasks = [asyncio.create_task(self._first())]
        self._tasks += [asyncio.create_task(self._later(i)) for i in range(1, len(self._stages))]
        for task in self._tasks:
            task.add_done_callback(self._on_done)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._error is not None and exc[0] in (None, asyncio.CancelledError):
            raise self._error

    async def submit(self, item: T) -> None:
        """Queue an item; waits while the pipeline is full; raises if the pipeline failed."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._error is not None or self._pending_weight < self._max_pending
            )
            self._raise_if_failed()
            self._pending.append(item)
            self._pending_weight += self._weight(item)
            self._changed.notify_all()

    async def drain(self) -> None:
        """Wait until everything submitted has gone through every stage."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._error is not None or (not self._pending and not self._in_flight)
            )
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def _take(self) -> list[T]:
        """Everything waiting, up to max_batch by weight (at least one item)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._pending))
            batch: list[T] = []
            used = 0
            while self._pending and (
                not batch or used + self._weight(self._pending[0]) <= self._max_batch
            ):
                item = self._pending.popleft()
                used += self._weight(item)
                batch.append(item)
            self._pending_weight -= used
            self._in_flight += 1
            self._changed.notify_all()
            return batch

    async def _first(self) -> None:
        while True:
            batch = await self._take()
            await self._hand_on(0, await self._stages[0](batch))

    async def _later(self, index: int) -> None:
        while True:
            value = await self._queues[index - 1].get()
            await self._hand_on(index, await self._stages[index](value))

    async def _hand_on(self, index: int, value: Any) -> None:
        if index + 1 < len(self._stages):
            await self._queues[index].put(value)
            return
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self._error is None:
            self._error = task.exception()
        for other in self._tasks:
            other.cancel()
        # The owner (an agent) may be waiting for records, not in submit(): interrupt it, so
        # the error surfaces now (leaving the `async with` raises it), not at the next record.
        if self._owner is not None and not self._owner.done():
            self._owner.cancel()
        self._waking = asyncio.ensure_future(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class SwapGate:
    """Batches pass while no model swap waits; a swap waits until the batches in flight are
    written, and new batches wait for the swap — so each batch sees one set of versions."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._active = 0
        self._swapping = False

    async def enter(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._swapping)
            self._active += 1

    async def leave(self) -> None:
        async with self._changed:
            self._active -= 1
            self._changed.notify_all()

    async def __aenter__(self) -> SwapGate:
        """`async with gate:` is the swap side: exclusive of every batch in flight."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._swapping)
            self._swapping = True
            await self._changed.wait_for(lambda: self._active == 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self._swapping = False
            self._changed.notify_all()
