"""MicroBatcher: many concurrent awaiting callers → one batched call in a worker thread.

Why: a model runs a batch of 32 far cheaper than 32 single calls (on a GPU by 10×+), but the
stream hands us items one by one. Callers `await submit(item)`; a worker collects up to
`max_batch` items, or whatever arrived within `max_delay_ms` of the oldest, runs the batch
function in an executor (the event loop stays free) and resolves each caller.

- Backpressure: at most `max_queue` items wait; further callers wait for room.
- Errors stay per item: the batch function returns an exception in an item's slot to fail only
  that item; if the whole call raises, that batch's items fail and the worker keeps going.
- Timeouts and cancellation: a caller that gives up is dropped from its batch if not yet run.
- close(): by default drains what is queued, then stops; new submits raise BatcherClosed.
No torch here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no more items."""


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    dropped: int = 0  # callers that timed out or were cancelled before their batch ran
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    enqueued_at: float


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        batch_fn: Callable[[list[T]], Sequence[R | BaseException]],
        max_batch: int = 32,
        max_delay_ms: float = 5.0,
        max_queue: int = 1024,
        workers: int = 1,
        executor: Executor | None = None,
        name: str = "batcher",
    ) -> None:
        """`workers` batches may run at once (1 on CPU: the model already uses every core;
        2 on a GPU overlaps host work with device work)."""
        if max_batch < 1 or max_queue < 1 or workers < 1:
            raise ValueError("max_batch, max_queue and workers must be >= 1")
        self._batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self._workers = workers
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._items: collections.deque[_Pending[T, R]] = collections.deque()
        self._room = asyncio.Semaphore(max_queue)
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.stats = BatcherStats()

    # --- callers ----------------------------------------------------------------------

    async def submit(self, item: T, timeout: float | None = None) -> R:
        """Waits for room (backpressure), then for this item's result; `timeout` covers both."""
        if self._closing:
            raise BatcherClosed(self.name)
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._room.acquire()
                if self._closing:
                    self._room.release()
                    raise BatcherClosed(self.name)
                self._items.append(_Pending(item, future, loop.time()))
                self._arrived.set()
                # Awaiting the future directly: a timeout/cancel here cancels it, and the
                # worker skips cancelled items.
                return await future
        except (TimeoutError, asyncio.CancelledError):
            if not future.done():
                future.cancel()
            raise

    @property
    def queued(self) -> int:
        return len(self._items)

    # --- lifecycle ----------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"{self.name}-{i}")
                for i in range(self._workers)
            ]

    async def start(self) -> None:
        self._ensure_started()

    async def close(self, drain: bool = True) -> None:
        """Stops taking items; finishes queued ones (drain) or fails them with BatcherClosed."""
        self._closing = True
        if not drain:
            while self._items:
                pending = self._items.popleft()
                self._room.release()
                if not pending.future.done():
                    pending.future.set_exception(BatcherClosed(self.name))
        self._arrived.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []
        if self._own_executor:
            self._executor.shutdown(wait=False)
        log.debug("batcher.closed", name=self.name, batches=self.stats.batches)

    async def __aenter__(self) -> MicroBatcher[T, R]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._items:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._collect(loop)
            live = [p for p in batch if not p.future.done()]
            self.stats.dropped += len(batch) - len(live)
            if live:
                await self._run(loop, live)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Pending[T, R]]:
        """Up to max_batch items; waits at most max_delay after the oldest item arrived."""
        batch: list[_Pending[T, R]] = []
        deadline = self._items[0].enqueued_at + self.max_delay
        while True:
            while self._items and len(batch) < self.max_batch:
                batch.append(self._items.popleft())
                self._room.release()
            remaining = deadline - loop.time()
            if len(batch) >= self.max_batch or self._closing or remaining <= 0:
                return batch
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[T, R]]) -> None:
        items = [p.item for p in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._batch_fn, items)
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} for {len(batch)}")
        except Exception as exc:
            self.stats.failed_batches += 1
            log.warning("batcher.batch_failed", name=self.name, size=len(batch), error=repr(exc))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.batch_sizes[len(batch)] += 1
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
