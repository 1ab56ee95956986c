"""When the API reads the alias (pinclip.api.queries.QueryService.live_version), on a real
milvus-lite store and a fake clock: as known within the TTL, refreshed in the background up to
twice the TTL (no query waits for the alias), read before the query after that."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pinclip.api.config import ApiConfig
from pinclip.api.observability import ApiMetrics
from pinclip.api.ports import ApiDeps
from pinclip.api.queries import QueryService
from vector_store import PinVector, VectorStore


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """The real store; counts alias reads."""

    def __init__(self, store: VectorStore) -> None:
        self.store, self.reads = store, 0

    def live_version(self) -> int | None:
        self.reads += 1
        return self.store.live_version()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    vs = VectorStore(str(tmp_path / "milvus.db"), dim=8)
    for version in (1, 2):
        vs.ensure_version(version)
        vs.upsert(version, [PinVector("p", [1.0] * 8, version, datetime.now(UTC))])
    vs.switch_alias(1)
    yield vs
    vs.close()


async def test_the_alias_is_refreshed_off_the_query_path_and_never_long_stale(
    store: VectorStore,
) -> None:
    clock, vectors = Clock(), CountingReads(store)
    deps = ApiDeps(vectors=vectors, graph=None, encoders=None, images=None)  # type: ignore[arg-type]
    queries = QueryService(deps, ApiConfig(live_version_ttl_s=1.0), ApiMetrics(), clock)

    assert await queries.live_version() == 1 and vectors.reads == 1
    store.switch_alias(2)
    clock.now += 0.5
    assert await queries.live_version() == 1 and vectors.reads == 1  # within the TTL: as known

    clock.now += 1.0  # past the TTL: answered as known, re-read in the background
    assert await queries.live_version() == 1
    assert queries._refresh is not None
    await queries._refresh
    assert vectors.reads == 2 and await queries.live_version() == 2

    store.switch_alias(1)
    clock.now += 2.5  # a quiet spell, longer than twice the TTL: read before answering
    assert await queries.live_version() == 1 and vectors.reads == 3
