"""GraphStore writes and export against the real Neo4j: replay idempotence, placeholders, paging.

The server is shared, so every test writes under its own id prefix and deletes it afterwards.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from graph_store import GraphStore, PinNode, Save

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def prefix() -> str:
    return f"test-graph-{uuid4().hex[:10]}-"


@pytest.fixture
def store(clean_graph: GraphStore) -> GraphStore:
    return clean_graph


def graph_state(store: GraphStore, prefix: str) -> dict[str, Any]:
    """Every node and relationship under the prefix, with all properties (order-free)."""
    nodes = store._read(
        "test_nodes",
        "MATCH (n) WHERE coalesce(n.pin_id, n.board_id, n.user_id) STARTS WITH $prefix "
        "RETURN labels(n) AS labels, n {.*} AS props",
        prefix=prefix,
    )
    rels = store._read(
        "test_rels",
        "MATCH (a)-[r]->(b) WHERE coalesce(a.pin_id, a.user_id) STARTS WITH $prefix "
        "RETURN type(r) AS type, coalesce(a.pin_id, a.user_id) AS src, "
        "coalesce(b.pin_id, b.board_id) AS dst, r {.*} AS props",
        prefix=prefix,
    )
    for rel in rels:
        rel["props"]["savers"] = sorted(rel["props"].get("savers", []))
    return {
        "nodes": sorted(repr(sorted(n.items())) for n in nodes),
        "rels": sorted(repr(sorted(r.items())) for r in rels),
    }


def sample_batch(prefix: str) -> tuple[list[PinNode], list[Save]]:
    p = prefix
    pins = [
        PinNode(f"{p}pin1", "Red chair", "A red chair", "file:///img/1.jpg", T0, f"{p}u1", False),
        PinNode(f"{p}pin2", "Blue lamp", "", "s3://bucket/2.jpg", T0, f"{p}u2", True),
    ]
    saves = [
        Save(f"{p}pin1", f"{p}board1", f"{p}u1", T0),
        Save(f"{p}pin1", f"{p}board1", f"{p}u2", T0 + timedelta(minutes=5)),
        Save(f"{p}pin1", f"{p}board1", f"{p}u2", T0 + timedelta(minutes=9)),  # same saver again
        Save(f"{p}pin2", f"{p}board1", f"{p}u2", T0 + timedelta(minutes=1)),
        Save(f"{p}pin2", f"{p}board2", f"{p}u3", T0 + timedelta(minutes=2)),
    ]
    return pins, saves


def edges(store: GraphStore, prefix: str) -> dict[tuple[str, str], tuple[int, datetime, datetime]]:
    return {
        (e.pin_id.removeprefix(prefix), e.board_id.removeprefix(prefix)): (
            e.saves,
            e.first_at,
            e.last_at,
        )
        for page in store.iter_saves(id_prefix=prefix)
        for e in page
    }


def test_ensure_schema_is_idempotent_and_creates_the_constraints(store: GraphStore) -> None:
    store.ensure_schema()
    rows = store._read(
        "test_constraints",
        "SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties "
        "WHERE type = 'UNIQUENESS' RETURN labelsOrTypes[0] AS label, properties[0] AS prop",
    )
    found = {(r["label"], r["prop"]) for r in rows}
    assert {("Pin", "pin_id"), ("Board", "board_id"), ("User", "user_id")} <= found


def test_saves_count_distinct_savers_and_keep_first_and_last_time(
    store: GraphStore, prefix: str
) -> None:
    pins, saves = sample_batch(prefix)
    store.upsert_pins(pins)
    store.add_saves(saves)
    assert edges(store, prefix) == {
        ("pin1", "board1"): (2, T0, T0 + timedelta(minutes=9)),
        ("pin2", "board1"): (1, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1)),
        ("pin2", "board2"): (1, T0 + timedelta(minutes=2), T0 + timedelta(minutes=2)),
    }
    assert store.get_pins([f"{prefix}pin2", f"{prefix}nope", f"{prefix}pin1"]) == [
        pins[1],
        pins[0],
    ]


def test_replaying_a_batch_changes_nothing(store: GraphStore, prefix: str) -> None:
    pins, saves = sample_batch(prefix)
    store.upsert_pins(pins)
    store.add_saves(saves)
    before = graph_state(store, prefix)
    counts = (store.count_pins(id_prefix=prefix), store.count_saves(id_prefix=prefix))

    store.upsert_pins(pins)
    store.add_saves(saves)
    # and again, one event per batch in reverse order (a consumer replaying after a crash)
    for save in reversed(saves):
        store.add_saves([save])

    assert graph_state(store, prefix) == before
    assert (store.count_pins(id_prefix=prefix), store.count_saves(id_prefix=prefix)) == counts
    assert counts == (2, 3)
    assert len(before["nodes"]) == 2 + 2 + 2  # pins, boards, creators (savers are not nodes)


def test_a_new_saver_increments_saves_once(store: GraphStore, prefix: str) -> None:
    _, saves = sample_batch(prefix)
    store.add_saves(saves)
    late = Save(f"{prefix}pin2", f"{prefix}board2", f"{prefix}u9", T0 + timedelta(hours=1))
    store.add_saves([late])
    store.add_saves([late])
    assert edges(store, prefix)[("pin2", "board2")] == (
        2,
        T0 + timedelta(minutes=2),
        T0 + timedelta(hours=1),
    )


def test_save_before_creation_makes_a_placeholder_that_creation_fills(
    store: GraphStore, prefix: str
) -> None:
    pins, saves = sample_batch(prefix)
    store.add_saves(saves)  # repins arrive before the pins' creation events

    placeholder = store.get_pins([f"{prefix}pin1"])[0]
    assert placeholder == PinNode(f"{prefix}pin1", pending=True)
    assert list(store.iter_pins(id_prefix=prefix)) == []
    assert [
        p.pin_id for page in store.iter_pins(id_prefix=prefix, include_pending=True) for p in page
    ] == [
        f"{prefix}pin1",
        f"{prefix}pin2",
    ]
    edges_before = edges(store, prefix)

    store.upsert_pins(pins)
    store.add_saves(saves)  # a replayed repin must not turn the pin back into a placeholder

    assert store.get_pins([f"{prefix}pin1", f"{prefix}pin2"]) == pins
    assert edges(store, prefix) == edges_before
    assert store.count_pins(id_prefix=prefix) == 2


def test_paging_covers_every_pin_and_edge_exactly_once(store: GraphStore, prefix: str) -> None:
    pins = [PinNode(f"{prefix}p{i:03d}", title=f"pin {i}", created_at=T0) for i in range(53)]
    saves = [
        Save(pin.pin_id, f"{prefix}b{(i * 7 + j) % 11:02d}", f"{prefix}u", T0)
        for i, pin in enumerate(pins)
        for j in range(1 + i % 4)
    ]
    # one pin with more edges than a page, so a page boundary falls inside its edges
    saves += [Save(f"{prefix}p010", f"{prefix}wide{j:02d}", f"{prefix}u", T0) for j in range(17)]
    saves += [Save(f"{prefix}ghost{i}", f"{prefix}b00", f"{prefix}u", T0) for i in range(3)]
    store.batch_size = 40  # several write transactions
    store.upsert_pins(pins)
    store.add_saves(saves)

    pin_pages = list(store.iter_pins(page_size=10, id_prefix=prefix))
    seen = [p.pin_id for page in pin_pages for p in page]
    assert seen == sorted(p.pin_id for p in pins)
    assert [len(page) for page in pin_pages] == [10, 10, 10, 10, 10, 3]
    with_pending = [
        p.pin_id
        for page in store.iter_pins(7, id_prefix=prefix, include_pending=True)
        for p in page
    ]
    assert with_pending == sorted([*seen, *(f"{prefix}ghost{i}" for i in range(3))])

    edge_pages = list(store.iter_saves(page_size=7, id_prefix=prefix))
    seen_edges = [(e.pin_id, e.board_id) for page in edge_pages for e in page]
    expected = sorted({(s.pin_id, s.board_id) for s in saves})
    assert seen_edges == expected
    assert all(len(page) <= 7 for page in edge_pages)
    assert store.count_saves(id_prefix=prefix) == len(expected)


def test_concurrent_replays_by_several_workers_converge(store: GraphStore, prefix: str) -> None:
    """At-least-once with several consumers: the same events written concurrently, in
    different orders, end in the same state as one clean write."""
    pins, saves = sample_batch(prefix)
    more = [
        Save(f"{prefix}pin{i % 7}", f"{prefix}board{i % 3}", f"{prefix}u{i % 5}", T0)
        for i in range(60)
    ]
    events = saves + more

    def worker(order: int) -> None:
        shuffled = random.Random(order).sample(events, len(events))
        for start in range(0, len(shuffled), 9):
            store.add_saves(shuffled[start : start + 9])
        store.upsert_pins(pins)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(worker, range(4)))
    concurrent = graph_state(store, prefix)

    store.delete_by_prefix(prefix)
    store.upsert_pins(pins)
    store.add_saves(events)
    assert graph_state(store, prefix) == concurrent


def test_write_batch_writes_what_the_separate_calls_write_and_returns_the_boards(
    store: GraphStore, prefix: str
) -> None:
    """The stream's one-statement write: same graph as upsert_pins + add_saves, boards back."""
    pins, saves = sample_batch(prefix)
    early = Save(f"{prefix}pin1", f"{prefix}early-board", f"{prefix}u9", T0 - timedelta(days=1))
    store.add_saves([early])  # a repin seen before the pin: a placeholder with one board
    boards = store.write_batch(pins, saves)
    written = graph_state(store, prefix)
    assert boards == {pin.pin_id: store.board_ids([pin.pin_id])[pin.pin_id] for pin in pins}
    assert f"{prefix}early-board" in boards[f"{prefix}pin1"]
    assert store.write_batch(pins, saves) == boards  # a replay changes nothing
    assert graph_state(store, prefix) == written

    store.delete_by_prefix(prefix)
    store.add_saves([early])
    store.upsert_pins(pins)
    store.add_saves(saves)
    assert graph_state(store, prefix) == written
