"""MicroBatcher: ordering, batching, delay, timeouts, backpressure, error isolation, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from encoder.batcher import BatcherClosed, MicroBatcher


class Recorder:
    """A batch function that records each batch; items ending in '!' fail individually."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate

    def __call__(self, items: list[str]) -> list[str | BaseException]:
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(list(items))
        return [ValueError(i) if i.endswith("!") else i.upper() for i in items]


async def test_each_caller_gets_its_own_result_in_batches() -> None:
    fn = Recorder()
    async with MicroBatcher(fn, max_batch=8, max_delay_ms=20) as batcher:
        words = [f"w{i}" for i in range(40)]
        results = await asyncio.gather(*(batcher.submit(w) for w in words))
    assert results == [w.upper() for w in words]
    assert max(len(b) for b in fn.batches) == 8
    assert len(fn.batches) < 40  # they really were batched
    assert [w for b in fn.batches for w in b] == words  # first in, first batched
    assert batcher.stats.items == 40


async def test_lone_item_runs_after_max_delay_not_waiting_for_a_full_batch() -> None:
    fn = Recorder()
    async with MicroBatcher(fn, max_batch=64, max_delay_ms=5) as batcher:
        assert await asyncio.wait_for(batcher.submit("solo"), timeout=5) == "SOLO"
    assert fn.batches == [["solo"]]


async def test_bad_item_fails_alone() -> None:
    fn = Recorder()
    async with MicroBatcher(fn, max_batch=8, max_delay_ms=20) as batcher:
        results = await asyncio.gather(
            *(batcher.submit(w) for w in ["a", "bad!", "c"]), return_exceptions=True
        )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert len(fn.batches) == 1


async def test_batch_that_raises_fails_its_items_and_the_worker_keeps_going() -> None:
    calls = []

    def flaky(items: list[str]) -> list[str]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return [i.upper() for i in items]

    async with MicroBatcher(flaky, max_batch=4, max_delay_ms=10) as batcher:
        first = await asyncio.gather(
            *(batcher.submit(w) for w in ["a", "b"]), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in first)
        assert await batcher.submit("c") == "C"
    assert batcher.stats.failed_batches == 1


async def test_wrong_result_count_fails_the_batch() -> None:
    async with MicroBatcher(lambda items: items[:-1], max_batch=4, max_delay_ms=10) as batcher:
        with pytest.raises(RuntimeError, match="returned 1 for 2"):
            await asyncio.gather(batcher.submit("a"), batcher.submit("b"))


async def test_timeout_raises_and_the_dropped_item_is_never_run() -> None:
    gate = threading.Event()
    fn = Recorder(gate)
    batcher = MicroBatcher(fn, max_batch=1, max_delay_ms=0)
    blocker = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0.05)  # "first" now occupies the worker
    with pytest.raises(TimeoutError):
        await batcher.submit("late", timeout=0.05)
    gate.set()
    assert await blocker == "FIRST"
    await batcher.close()
    assert fn.batches == [["first"]]
    assert batcher.stats.dropped == 1


async def test_full_queue_makes_callers_wait() -> None:
    gate = threading.Event()
    fn = Recorder(gate)
    batcher = MicroBatcher(fn, max_batch=1, max_delay_ms=0, max_queue=2)
    tasks = [asyncio.create_task(batcher.submit(f"i{i}")) for i in range(6)]
    await asyncio.sleep(0.1)
    # One item is in the (blocked) model, two wait in the queue, three wait for room.
    assert batcher.queued == 2
    assert not any(t.done() for t in tasks)
    gate.set()
    assert await asyncio.gather(*tasks) == [f"I{i}" for i in range(6)]
    await batcher.close()
    assert max(batcher.stats.batch_sizes) == 1


async def test_close_drains_queued_items_then_refuses_new_ones() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, max_batch=4, max_delay_ms=50)
    pending = [asyncio.create_task(batcher.submit(f"q{i}")) for i in range(6)]
    await asyncio.sleep(0)
    await batcher.close()
    assert [t.result() for t in pending] == [f"Q{i}" for i in range(6)]
    with pytest.raises(BatcherClosed):
        await batcher.submit("after")


async def test_close_without_drain_fails_queued_items() -> None:
    gate = threading.Event()
    batcher = MicroBatcher(Recorder(gate), max_batch=1, max_delay_ms=0)
    running = asyncio.create_task(batcher.submit("running"))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(batcher.submit("queued"))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(batcher.close(drain=False))
    await asyncio.sleep(0.01)
    gate.set()
    await closing
    assert await running == "RUNNING"
    with pytest.raises(BatcherClosed):
        await queued


async def test_event_loop_stays_free_while_a_batch_runs() -> None:
    gate = threading.Event()
    batcher = MicroBatcher(Recorder(gate), max_batch=1, max_delay_ms=0)
    blocked = asyncio.create_task(batcher.submit("slow"))
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and not blocked.done()
    gate.set()
    assert await blocked == "SLOW"
    await batcher.close()


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)


async def test_two_workers_run_two_batches_at_once() -> None:
    both_inside = threading.Barrier(2, timeout=5)  # breaks (raises) unless two batches overlap

    def fn(items: list[str]) -> list[str]:
        both_inside.wait()
        return items

    async with MicroBatcher(fn, max_batch=1, max_delay_ms=0, workers=2) as batcher:
        assert await asyncio.gather(batcher.submit("a"), batcher.submit("b")) == ["a", "b"]
