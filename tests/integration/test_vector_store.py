"""VectorStore against real Milvus: milvus-lite and the Milvus server (fixture `milvus_uri`).

Each test works under its own collection prefix and alias and drops what it created, because the
server is shared with the other packages' tests.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pymilvus import MilvusClient

from vector_store import (
    DropRefused,
    NoLiveVersion,
    PinNotFound,
    PinVector,
    SwitchRefused,
    UnknownVersion,
    VectorStore,
    VectorStoreUnavailable,
    filters,
)
from vector_store.milvus_io import pin_schema

pytestmark = pytest.mark.integration

DIM = 16
T0 = datetime(2026, 4, 1, tzinfo=UTC)


class FakeClock:
    """Controls the grace period without sleeping."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def unique_names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"vt{tag}_v", f"vt{tag}_alias"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(milvus_uri: str, clock: FakeClock) -> Iterator[VectorStore]:
    prefix, alias = unique_names()
    vs = VectorStore(
        milvus_uri, alias=alias, dim=DIM, prefix=prefix, batch_size=7, max_boards=8, clock=clock
    )
    try:
        yield vs
    finally:
        vs.purge()
        vs.close()


def make_pins(n: int, version: int, seed: int = 0) -> list[PinVector]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return [
        PinVector(
            pin_id=f"pin{i}",
            pin=vectors[i],
            model_version=version,
            created_at=T0 + timedelta(minutes=i),
            board_ids=(f"board{i % 4}", "board_all"),
            is_ad=(i % 3 == 0),
        )
        for i in range(n)
    ]


def test_upsert_replay_is_idempotent_and_replaces_rows(store: VectorStore) -> None:
    store.ensure_version(1)
    pins = make_pins(40, version=1)
    store.upsert(1, pins)
    store.upsert(1, pins)  # at-least-once delivery replays whole batches
    store.upsert(1, pins[5:20])
    assert store.count(1) == 40

    moved = PinVector("pin3", pins[3].pin, 1, T0, board_ids=("board_new",), is_ad=False)
    store.upsert(1, [moved])
    assert store.count(1) == 40
    [stored] = store.get(["pin3"], version=1)
    assert stored.board_ids == ("board_new",)
    expected = np.asarray(pins[3].pin) / np.linalg.norm(pins[3].pin)
    assert np.allclose(stored.pin, expected, atol=1e-6)


def test_rows_carry_the_pins_content_to_every_hit_cut_not_refused(store: VectorStore) -> None:
    """Title and image URI come back with each hit and each get (one round trip); a title over
    the cap is cut at a character boundary — the same on both backends (the server counts
    bytes, lite characters) — and an over-long URI is left out rather than cut."""
    from vector_store.records import MAX_IMAGE_URI_BYTES, MAX_TITLE_BYTES

    store.ensure_version(1)
    pins = make_pins(6, version=1)
    long_title = "ü" * MAX_TITLE_BYTES  # twice the cap in UTF-8 bytes
    contents = [
        ("Vélo rouge 😀", "file:///content/ab/abc"),
        (long_title, "https://img.example/" + "a" * MAX_IMAGE_URI_BYTES),
        ("", ""),
    ]
    rows = [
        replace(pin, title=title, image_uri=uri)
        for pin, (title, uri) in zip(pins, contents * 2, strict=True)
    ]
    store.upsert(1, rows)
    hits = {h.pin_id: h for h in store.search(pins[0].pin, k=6, version=1)}
    stored = {p.pin_id: p for p in store.get([p.pin_id for p in pins], version=1)}
    for row in rows:
        for got in (hits[row.pin_id], stored[row.pin_id]):
            if row.title is long_title:
                assert got.title == "ü" * (MAX_TITLE_BYTES // 2) and got.image_uri == ""
            else:
                assert (got.title, got.image_uri) == (row.title, row.image_uri)
        assert hits[row.pin_id].board_ids == row.board_ids


def test_upsert_refuses_rows_of_another_model_version(store: VectorStore) -> None:
    store.ensure_version(1)
    with pytest.raises(ValueError, match="v2"):
        store.upsert(1, make_pins(2, version=2))
    assert store.count(1) == 0


def test_get_and_delete(store: VectorStore) -> None:
    store.ensure_version(1)
    store.upsert(1, make_pins(10, version=1))
    found = store.get(["pin1", "pin2", "missing"], version=1)
    assert sorted(p.pin_id for p in found) == ["pin1", "pin2"]
    assert all(p.model_version == 1 for p in found)

    store.delete(["pin1", "missing"], version=1)
    store.delete(["pin1"], version=1)  # replayed delete
    assert store.count(1) == 9
    assert store.get(["pin1"], version=1) == []


def test_delete_everywhere_reaches_every_version(store: VectorStore) -> None:
    for version in (1, 2):
        store.ensure_version(version)
        store.upsert(version, make_pins(5, version=version))
    store.delete_everywhere(["pin0", "pin4"])
    assert store.count(1) == store.count(2) == 3


@pytest.mark.parametrize("odd", ["qu\"ote\\slash'x", "é\x17😀\tnew\nline\rcr"])
def test_ids_with_quotes_backslashes_and_control_characters_round_trip(
    store: VectorStore, odd: str
) -> None:
    store.ensure_version(1)
    pins = make_pins(3, version=1)
    store.upsert(1, [PinVector(odd, pins[0].pin, 1, T0), *pins[1:]])
    assert [p.pin_id for p in store.get([odd], version=1)] == [odd]
    hits = store.search_by_pin(odd, k=5, version=1)
    assert odd not in {h.pin_id for h in hits}
    store.delete([odd], version=1)
    assert store.count(1) == 2


def test_search_by_pin_excludes_itself_and_finds_its_near_duplicate(store: VectorStore) -> None:
    store.ensure_version(1)
    pins = make_pins(30, version=1)
    twin = PinVector("twin7", np.asarray(pins[7].pin) + 0.01, 1, T0)
    store.upsert(1, [*pins, twin])
    store.switch_alias(1)

    hits = store.search_by_pin("pin7", k=5)
    assert len(hits) == 5
    assert "pin7" not in {h.pin_id for h in hits}
    assert hits[0].pin_id == "twin7"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.model_version for h in hits} == {1}

    with pytest.raises(PinNotFound):
        store.search_by_pin("nope", k=5)


def test_search_by_vector_ranks_like_exact_cosine(store: VectorStore) -> None:
    store.ensure_version(1)
    pins = make_pins(50, version=1)
    store.upsert(1, pins)
    query = np.random.default_rng(9).normal(size=DIM).astype(np.float32)
    matrix = np.stack([np.asarray(p.pin) / np.linalg.norm(p.pin) for p in pins])
    exact = [f"pin{i}" for i in np.argsort(-(matrix @ (query / np.linalg.norm(query))))[:5]]
    hits = store.search(query, k=5, version=1)
    assert [h.pin_id for h in hits] == exact


def test_filters_on_is_ad_and_board_ids(store: VectorStore) -> None:
    store.ensure_version(1)
    pins = make_pins(24, version=1)
    store.upsert(1, pins)
    by_id = {p.pin_id: p for p in pins}
    query = pins[0].pin

    ads = store.search(query, k=24, filter=filters.is_ad(True), version=1)
    assert {h.pin_id for h in ads} == {p.pin_id for p in pins if p.is_ad}

    on_board = store.search(query, k=24, filter=filters.on_any_board(["board1"]), version=1)
    assert {h.pin_id for h in on_board} == {p.pin_id for p in pins if "board1" in p.board_ids}

    both = filters.all_of(filters.is_ad(False), filters.on_any_board(["board2", "board3"]))
    hits = store.search(query, k=24, filter=both, version=1)
    assert hits
    for hit in hits:
        assert not by_id[hit.pin_id].is_ad
        assert {"board2", "board3"} & set(by_id[hit.pin_id].board_ids)

    since = filters.created_since(T0 + timedelta(minutes=20))
    recent = store.search(query, k=24, filter=since, version=1)
    assert {h.pin_id for h in recent} == {"pin20", "pin21", "pin22", "pin23"}


def test_versions_alias_and_reads_through_it(store: VectorStore) -> None:
    assert store.versions() == []
    assert store.live_version() is None
    with pytest.raises(NoLiveVersion):
        store.search(np.ones(DIM), k=3)
    with pytest.raises(UnknownVersion):
        store.upsert(1, make_pins(1, version=1))

    assert store.ensure_version(1) == store.ensure_version(1)  # idempotent
    store.upsert(1, make_pins(10, version=1))
    assert store.switch_alias(1).previous is None
    assert store.live_version() == 1
    assert {h.model_version for h in store.search(np.ones(DIM), k=3)} == {1}

    store.ensure_version(2)
    assert store.versions() == [1, 2]
    with pytest.raises(SwitchRefused):
        store.switch_alias(2)  # empty while v1 is live
    store.upsert(2, make_pins(8, version=2, seed=1))
    assert not store.verify(2, expected_count=10).ok
    with pytest.raises(SwitchRefused, match="expected at least 10"):
        store.switch_alias(2, expected_count=10)
    assert store.live_version() == 1

    store.upsert(2, make_pins(10, version=2, seed=1))
    switch = store.switch_alias(2, expected_count=10)
    assert (switch.previous, switch.current) == (1, 2)
    assert store.live_version() == 2
    assert {h.model_version for h in store.search(np.ones(DIM), k=3)} == {2}
    assert store.get(["pin0"])[0].model_version == 2


def test_old_version_is_dropped_only_after_the_grace_period(
    store: VectorStore, clock: FakeClock
) -> None:
    for version in (1, 2):
        store.ensure_version(version)
        store.upsert(version, make_pins(4, version=version))
    store.switch_alias(1)
    store.switch_alias(2, expected_count=4)
    store.ensure_version(3)  # a fill in progress

    with pytest.raises(DropRefused, match="live"):
        store.drop_version(2, force=True)
    with pytest.raises(DropRefused, match="grace"):
        store.drop_version(1)
    assert store.drop_expired() == []

    clock.now += store.grace
    assert store.drop_expired() == [1]
    assert store.versions() == [2, 3]
    store.drop_version(1)  # already gone: no-op


def test_rollback_clears_the_retired_mark(store: VectorStore, clock: FakeClock) -> None:
    for version in (1, 2):
        store.ensure_version(version)
        store.upsert(version, make_pins(4, version=version))
    store.switch_alias(1)
    store.switch_alias(2, expected_count=4)
    store.switch_alias(1, expected_count=4)  # roll back
    clock.now += 2 * store.grace
    assert store.drop_expired() == [2]
    assert store.live_version() == 1
    assert store.versions() == [1]


def test_released_collection_is_loaded_again_on_read(store: VectorStore, milvus_uri: str) -> None:
    name = store.ensure_version(1)
    store.upsert(1, make_pins(6, version=1))
    other = MilvusClient(milvus_uri)
    try:
        other.release_collection(name)  # what a reopen of a lite data dir leaves behind
    finally:
        other.close()
    assert len(store.search(np.ones(DIM), k=3, version=1)) == 3
    assert store.count(1) == 6


def test_a_collection_another_writer_left_without_its_index_is_indexed_and_loaded(
    store: VectorStore, milvus_uri: str
) -> None:
    """The worker and the backfill both ensure a candidate version; one creates the collection,
    the other may load it before its index exists (seen in CI: `index not found`, which was
    once misread as a missing collection)."""
    name = store.naming.collection(1)
    other = MilvusClient(milvus_uri)
    try:
        other.create_collection(name, schema=pin_schema(DIM, 8))  # created, no index, not loaded
    finally:
        other.close()
    assert store.ensure_version(1) == name
    store.upsert(1, make_pins(6, version=1))
    assert len(store.search(np.ones(DIM), k=3, version=1)) == 3


def test_unreachable_server_raises_a_retryable_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(VectorStoreUnavailable):
        VectorStore(f"http://127.0.0.1:{port}", dim=DIM, timeout_s=2)


def test_strong_reads_see_the_write_just_made(store: VectorStore) -> None:
    """Freshness: with Strong consistency an acknowledged upsert is visible to the next read."""
    store.ensure_version(1)
    store.upsert(1, make_pins(20, version=1))
    store.switch_alias(1)
    target = np.zeros(DIM, dtype=np.float32)
    target[3] = 1.0
    for round_ in range(3):  # rewrite the same pin; each read must see the latest row
        store.upsert(1, [PinVector("fresh", target, 1, T0, board_ids=(f"r{round_}",))])
        assert store.search(target, k=1)[0].pin_id == "fresh"
        assert store.get(["fresh"])[0].board_ids == (f"r{round_}",)
        target = np.roll(target, 1)


def test_per_call_consistency_override(store: VectorStore) -> None:
    store.ensure_version(1)
    store.upsert(1, make_pins(5, version=1))
    # A Strong read first moves the query node's safe time past the write, so the Bounded read
    # below is deterministic; what it proves is that the override reaches the server call.
    assert store.count(1) == 5
    hits = store.search(make_pins(1, version=1)[0].pin, k=1, version=1, consistency="Bounded")
    assert hits and hits[0].pin_id == "pin0"
    with pytest.raises(ValueError):
        store.search(np.ones(DIM), k=1, version=1, consistency="Sometimes")


def test_interrupted_switch_still_gets_a_grace_period(
    store: VectorStore, clock: FakeClock, milvus_uri: str
) -> None:
    for version in (1, 2):
        store.ensure_version(version)
        store.upsert(version, make_pins(4, version=version))
    store.switch_alias(1)
    store.switch_alias(2, expected_count=4)
    other = MilvusClient(milvus_uri)
    try:  # what a crash right after the alias move leaves: v1 has no retirement mark
        other.alter_collection_properties(
            store.naming.collection(1), properties={"pinclip.retired_at": ""}
        )
    finally:
        other.close()
    assert store.drop_expired() == []  # grace starts now, not "never live, drop at once"
    clock.now += store.grace
    assert store.drop_expired() == [1]
