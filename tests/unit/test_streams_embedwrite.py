"""The one embed-and-write path without services: real image decoding, in-memory stores."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streams_fakes import HashEncoder, MemoryGraph, MemoryVectors, png

from graph_store import PinNode, Save
from streams.decode import Decoder
from streams.embedwrite import EmbedWritePath, PinJob, PinRecord, chunks_by_bytes, row_bytes
from streams.events import NewPin
from streams.graph_writes import GraphWriter
from streams.pipeline import RetryPolicy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(base_s=0.001, max_s=0.01)


def encoders(tmp_path: Path, versions: list[int]) -> dict[int, HashEncoder]:
    out = {}
    for v in versions:
        (tmp_path / f"v{v}").mkdir(exist_ok=True)
        (tmp_path / f"v{v}" / "manifest.json").write_text(f'{{"version": {v}, "dim": 8}}')
        out[v] = HashEncoder(tmp_path / f"v{v}")
    return out


def job(pin_id: str, image: bytes, board: str | None = "b1") -> PinJob:
    record = PinRecord(pin_id, "title", "desc", f"file:///{pin_id}.png", NOW, "u1", False, board)
    return PinJob(record, image, pin_id)


class RefusingVectors(MemoryVectors):
    """Refuses (ValueError: deterministic) any batch that holds one of `bad`."""

    def __init__(self, bad: set[str]) -> None:
        super().__init__()
        self.bad = bad
        self.calls = 0

    def upsert(self, version: int, pins: list[Any]) -> int:
        self.calls += 1
        if any(p.pin_id in self.bad for p in pins):
            raise ValueError("invalid row")
        return super().upsert(version, pins)


class SlowGraph(MemoryGraph):
    """Counts transactions; refuses pins in `bad`; takes `delay` seconds per transaction."""

    def __init__(self, delay: float = 0.0, bad: set[str] | None = None) -> None:
        super().__init__()
        self.delay, self.bad, self.transactions = delay, bad or set(), 0

    def write_batch(self, pins: list[Any], saves: list[Any] = ()) -> dict[str, list[str]]:  # type: ignore[assignment]
        self.transactions += 1
        time.sleep(self.delay)
        if any(p.pin_id in self.bad for p in pins):
            raise ValueError("constraint")
        return super().write_batch(pins, saves)


def test_a_pin_record_gives_the_node_the_first_save_and_the_row() -> None:
    event = NewPin(
        pin_id="p",
        board_id="b",
        user_id="u",
        title="T",
        description="D",
        image_uri="file:///x.png",
        created_at=NOW,
        is_ad=True,
    )
    record = PinRecord.from_new_pin(event, "file:///stored.png")
    written = NOW + timedelta(seconds=1)
    assert record.node(written) == PinNode(
        "p", "T", "D", "file:///stored.png", NOW, "u", True, embedded_at=written
    )
    assert record.first_save() == Save("p", "b", "u", NOW)
    row = record.vector_row(3, np.ones(4, np.float32), ["a", "b"])
    assert (row.pin_id, row.model_version, row.board_ids, row.is_ad) == ("p", 3, ("a", "b"), True)
    assert (row.title, row.image_uri) == ("T", "file:///stored.png")
    # Re-embedding a stored pin writes the same content and leaves embedded_at as it was.
    stored = PinRecord.from_node(record.node(written), default_created_at=datetime.now(UTC))
    assert stored.node(written) == record.node() and stored.first_save() is None
    again = stored.vector_row(3, np.ones(4, np.float32), ["a", "b"])
    assert replace(again, pin=()) == replace(row, pin=())


def test_requests_are_cut_by_bytes_and_keep_every_row_in_order() -> None:
    record = PinRecord("p", "t", "", "file:///x", NOW)
    rows = [record.vector_row(1, np.zeros(256, np.float32), ["b"] * i) for i in range(50)]
    cap = 5 * row_bytes(rows[-1])
    chunks = chunks_by_bytes(rows, cap, row_bytes)
    assert [r for c in chunks for r in c] == rows
    assert all(sum(row_bytes(r) for r in c) <= cap for c in chunks)
    assert len(chunks_by_bytes(rows[:1], 1, row_bytes)) == 1  # one oversized row still goes


async def test_bad_images_and_refused_rows_fail_alone_and_rows_carry_the_graph_boards(
    tmp_path: Path,
) -> None:
    vectors, graph = RefusingVectors({"refused"}), MemoryGraph()
    for v in (1, 2):
        vectors.ensure_version(v)
    graph.add_saves([Save("red", "b0", "u9", NOW)])  # an earlier repin: a placeholder edge
    path = EmbedWritePath(vectors, graph, decoder=Decoder(2), policy=FAST)
    jobs = [
        job("red", png((255, 0, 0))),
        job("garbage", b"not an image"),
        job("refused", png((0, 255, 0))),
        job("blue", png((0, 0, 255))),
    ]
    written = await path.run(jobs, encoders(tmp_path, [1, 2]))
    await path.close()
    assert [j.record.pin_id for j in written.jobs] == ["red", "blue"]
    assert written.versions == (1, 2)
    why = {j.record.pin_id: (e.stage, e.reason) for j, e in written.failed}
    assert why == {"garbage": ("decode", "unsupported_format"), "refused": ("write", "invalid_row")}
    assert sorted(vectors.rows[1]) == sorted(vectors.rows[2]) == ["blue", "red"]
    assert vectors.rows[1]["red"].board_ids == ("b0", "b1")  # what the graph holds after the write
    assert not np.allclose(vectors.rows[1]["red"].pin, vectors.rows[2]["red"].pin)
    assert graph.saves >= {("red", "b1"), ("blue", "b1"), ("refused", "b1")}


async def test_a_pin_the_graph_refuses_is_not_written_to_milvus(tmp_path: Path) -> None:
    vectors, graph = MemoryVectors(), SlowGraph(bad={"bad"})
    vectors.ensure_version(1)
    path = EmbedWritePath(vectors, graph, decoder=Decoder(1), policy=FAST)
    written = await path.run(
        [job("ok", png((1, 2, 3))), job("bad", png((3, 2, 1)))], encoders(tmp_path, [1])
    )
    await path.close()
    assert [j.record.pin_id for j in written.jobs] == ["ok"]
    assert [(j.record.pin_id, e.stage) for j, e in written.failed] == [("bad", "write")]
    assert list(vectors.rows[1]) == ["ok"]


def node(pin_id: str) -> PinNode:
    return PinNode(pin_id, "t", "", "file:///x", NOW, "u", False)


async def test_graph_writes_that_wait_together_share_one_transaction() -> None:
    graph = SlowGraph(delay=0.05)
    writer = GraphWriter(graph, FAST)
    results = await asyncio.gather(
        writer.write([node("a")]),
        writer.write([node("b")], [Save("b", "board", "u", NOW)]),
        writer.write([], [Save("c", "board", "u", NOW)]),  # a repin agent's saves
    )
    await writer.close()
    assert graph.transactions == 1
    assert [boards for boards, _ in results] == [{"a": []}, {"b": ["board"]}, {}]
    assert graph.saves == {("b", "board"), ("c", "board")}


async def test_one_callers_refused_pin_never_fails_another_callers_pins() -> None:
    graph = SlowGraph(delay=0.01, bad={"bad"})
    writer = GraphWriter(graph, FAST)
    results = await asyncio.gather(
        writer.write([node("a1")]),
        writer.write([node("b1"), node("bad")]),
        writer.write([node("c1")]),
    )
    await writer.close()
    assert [sorted(refused) for _, refused in results] == [[], ["bad"], []]
    assert set(graph.pins) == {"a1", "b1", "c1"}


@pytest.mark.parametrize("processes", [False, True])
async def test_decoding_in_threads_or_processes_gives_the_same_pixels(processes: bool) -> None:
    from encoder.preprocess import ImagePreprocessor

    pre = ImagePreprocessor(16)
    images = [png((i * 20, 0, 0)) for i in range(5)] + [b"\x89PNG broken"]
    decoder = Decoder(2, processes=processes)
    try:
        results = await decoder.decode(pre, images)
    finally:
        decoder.close()
    for data, result in zip(images[:5], results[:5], strict=True):
        assert np.array_equal(result, pre.load(data))
    assert (results[5].stage, results[5].reason) == ("decode", "unsupported_format")
