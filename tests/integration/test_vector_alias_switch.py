"""The hot-swap guarantee: readers searching through the alias while v2 is filled and switched
see, in every single result list, exactly one version — never a mix, never an empty or short list.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pytest

from vector_store import PinVector, VectorStore

pytestmark = pytest.mark.integration

DIM = 16
PINS = 300
K = 10
BATCH = 25
READS_AFTER_SWITCH = 20
T0 = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class ReaderLog:
    """Everything the background reader saw, in order."""

    versions_per_list: list[frozenset[int]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    progress: threading.Condition = field(default_factory=threading.Condition)
    reads_with_v2: int = 0

    def wait(self, done: Callable[[], bool]) -> None:
        """Block until the reader made the progress `done` describes (bounded, not asserted)."""
        with self.progress:
            self.progress.wait_for(lambda: done() or bool(self.errors), timeout=120)


def pins_for(version: int) -> list[PinVector]:
    rng = np.random.default_rng(100 + version)
    vectors = rng.normal(size=(PINS, DIM)).astype(np.float32)
    return [PinVector(f"pin{i}", vectors[i], version, T0) for i in range(PINS)]


@pytest.fixture
def stores(milvus_uri: str) -> Iterator[tuple[VectorStore, VectorStore]]:
    """A writer and a separate reader client (as the API process and the backfill would be)."""
    tag = uuid.uuid4().hex[:10]
    options = dict(alias=f"vs{tag}_alias", dim=DIM, prefix=f"vs{tag}_v")
    writer = VectorStore(milvus_uri, **options)  # type: ignore[arg-type]
    reader = VectorStore(milvus_uri, **options)  # type: ignore[arg-type]
    try:
        yield writer, reader
    finally:
        reader.close()
        writer.purge()
        writer.close()


def read_continuously(reader: VectorStore, stop: threading.Event, log: ReaderLog) -> None:
    rng = np.random.default_rng(7)
    while not stop.is_set():
        try:
            hits = reader.search(rng.normal(size=DIM).astype(np.float32), k=K)
        except BaseException as exc:  # recorded and asserted on by the main thread
            with log.progress:
                log.errors.append(exc)
                log.progress.notify_all()
            return
        versions = frozenset(h.model_version for h in hits)
        with log.progress:
            log.versions_per_list.append(versions)
            log.lengths.append(len(hits))
            log.reads_with_v2 += 2 in versions
            log.progress.notify_all()


def test_every_result_list_comes_from_exactly_one_version_across_the_switch(
    stores: tuple[VectorStore, VectorStore],
) -> None:
    writer, reader = stores
    writer.ensure_version(1)
    writer.upsert(1, pins_for(1))
    writer.switch_alias(1, expected_count=PINS)

    log = ReaderLog()
    stop = threading.Event()
    thread = threading.Thread(target=read_continuously, args=(reader, stop, log), daemon=True)
    thread.start()
    try:
        writer.ensure_version(2)
        v2 = pins_for(2)
        for start in range(0, PINS, BATCH):  # the backfill, batch by batch, while reads go on
            writer.upsert(2, v2[start : start + BATCH])
            seen = len(log.versions_per_list)
            log.wait(lambda seen=seen: len(log.versions_per_list) > seen)  # type: ignore[misc]
        reads_before_switch = len(log.versions_per_list)
        writer.switch_alias(2, expected_count=PINS)
        log.wait(lambda: log.reads_with_v2 >= READS_AFTER_SWITCH)
    finally:
        stop.set()
        thread.join(timeout=60)

    assert not log.errors, f"reader failed: {log.errors[0]!r}"
    assert reads_before_switch >= PINS // BATCH, "the reader did not search during the fill"
    assert log.reads_with_v2 >= READS_AFTER_SWITCH
    assert all(length == K for length in log.lengths), "a result list came back short or empty"
    assert all(len(versions) == 1 for versions in log.versions_per_list), "mixed versions"
    sequence = [next(iter(v)) for v in log.versions_per_list]
    first_v2 = sequence.index(2)
    assert set(sequence[:first_v2]) == {1}
    assert set(sequence[first_v2:]) == {2}, "a read went back to v1 after v2 was seen"
