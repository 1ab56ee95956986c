"""StagedPipeline and SwapGate: order, overlap, adaptive batches, errors, swaps."""

from __future__ import annotations

import asyncio

import pytest

from streams.pipelining import StagedPipeline, SwapGate


class Recorder:
    """Three stages that log (stage, event, batch) and wait on per-stage events when asked."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, tuple[int, ...]]] = []
        self.finished: list[int] = []
        self.hold_first = asyncio.Event()
        self.hold_first.set()
        self.first_started = asyncio.Event()

    async def first(self, batch: list[int]) -> tuple[int, ...]:
        self.log.append(("first", "start", tuple(batch)))
        self.first_started.set()
        await self.hold_first.wait()
        await asyncio.sleep(0.01)
        self.log.append(("first", "end", tuple(batch)))
        return tuple(batch)

    async def second(self, batch: tuple[int, ...]) -> tuple[int, ...]:
        self.log.append(("second", "start", batch))
        await asyncio.sleep(0.03)
        self.log.append(("second", "end", batch))
        return batch

    async def third(self, batch: tuple[int, ...]) -> None:
        self.finished.extend(batch)


async def test_batches_keep_their_order_and_the_next_is_prepared_during_the_writes() -> None:
    rec = Recorder()
    second_started = asyncio.Event()
    next_prepared = asyncio.Event()

    async def first(batch: list[int]) -> tuple[int, ...]:
        if batch[0] > 0:
            next_prepared.set()
        return await rec.first(batch)

    async def second(batch: tuple[int, ...]) -> tuple[int, ...]:
        if batch == (0,):
            second_started.set()
            # Batch 0 is "written" only once a later batch is being prepared: without the
            # overlap this would wait forever (and the test time out).
            await asyncio.wait_for(next_prepared.wait(), timeout=10)
        return await rec.second(batch)

    async with StagedPipeline([first, second, rec.third], max_batch=2, max_pending=100) as pipeline:
        await pipeline.submit(0)
        await second_started.wait()
        for i in range(1, 6):
            await pipeline.submit(i)
        await pipeline.drain()
    assert rec.finished == list(range(6))
    firsts = [e[2] for e in rec.log if e[:2] == ("first", "start")]
    assert firsts[0] == (0,) and [i for b in firsts for i in b] == list(range(6))


async def test_batches_grow_with_what_is_waiting_up_to_the_cap() -> None:
    rec = Recorder()
    rec.hold_first.clear()
    async with StagedPipeline(
        [rec.first, rec.second, rec.third], max_batch=4, max_pending=100
    ) as pipeline:
        await pipeline.submit(0)
        await rec.first_started.wait()  # the first batch ([0]) is taken and held
        for i in range(1, 10):
            await pipeline.submit(i)
        rec.hold_first.set()
        await pipeline.drain()
    batches = [e[2] for e in rec.log if e[:2] == ("first", "start")]
    assert batches == [(0,), (1, 2, 3, 4), (5, 6, 7, 8), (9,)]
    assert rec.finished == list(range(10))


async def test_submit_waits_while_the_pipeline_is_full() -> None:
    rec = Recorder()
    rec.hold_first.clear()
    async with StagedPipeline([rec.first, rec.third], max_batch=1, max_pending=2) as pipeline:
        await pipeline.submit(0)
        await rec.first_started.wait()
        await pipeline.submit(1)
        await pipeline.submit(2)
        blocked = asyncio.ensure_future(pipeline.submit(3))
        await asyncio.sleep(0.02)
        assert not blocked.done()
        rec.hold_first.set()
        await blocked
        await pipeline.drain()
    assert rec.finished == [0, 1, 2, 3]


async def test_an_error_in_a_stage_interrupts_the_owner_and_is_raised() -> None:
    async def broken(batch: list[int]) -> None:
        raise RuntimeError("bug")

    forever = asyncio.Event()
    with pytest.raises(RuntimeError, match="bug"):
        async with StagedPipeline([broken], max_batch=4, max_pending=4) as pipeline:
            await pipeline.submit(1)
            await forever.wait()  # the agent waiting for records: interrupted, not stuck


async def test_a_swap_waits_for_batches_in_flight_and_holds_new_ones() -> None:
    gate = SwapGate()
    events: list[str] = []
    await gate.enter()  # a batch is being encoded / written

    async def swap() -> None:
        async with gate:
            events.append("swap")
            await asyncio.sleep(0.01)
            events.append("swapped")

    async def next_batch() -> None:
        await asyncio.sleep(0.005)
        await gate.enter()
        events.append("next batch")
        await gate.leave()

    task = asyncio.gather(swap(), next_batch())
    await asyncio.sleep(0.02)
    assert events == []  # the swap waits for the batch in flight; the next batch for the swap
    events.append("batch written")
    await gate.leave()
    await task
    assert events == ["batch written", "swap", "swapped", "next batch"]
