"""Neighbor queries against the real Neo4j on small hand-checked graphs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import uuid4

import pytest

from graph_store import BipartiteGraph, GraphStore, Save, WalkParams, walk_neighbors

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

# Board -> [(pin, minutes after T0 it was saved)].
# B4 is the "giant" board: with a cap of 3 only its 3 most recently saved other pins count.
HAND_GRAPH = {
    "B1": [("p", 0), ("a", 1), ("b", 2), ("c", 3)],
    "B2": [("p", 0), ("a", 1), ("b", 2)],
    "B3": [("p", 0), ("a", 1)],
    "B4": [("p", 0), ("d", 1), ("g1", 2), ("g2", 3), ("g3", 4), ("g4", 5), ("c", 6)],
    "B5": [("x", 0), ("y", 1)],  # unconnected to p
}
# Hand-computed shared-board scores for p:
#   no cap : a=3 (B1,B2,B3)  b=2 (B1,B2)  c=2 (B1,B4)  d=g1=g2=g3=g4=1 (B4)
#   cap 3  : B4 keeps c, g4, g3 -> a=3 b=2 c=2 g3=1 g4=1   (d, g1, g2 fall out)
#   cap 1  : B1 keeps c, B2 keeps b, B3 keeps a, B4 keeps c -> c=2 a=1 b=1


@pytest.fixture
def prefix() -> str:
    return f"test-graphn-{uuid4().hex[:10]}-"


@pytest.fixture
def store(clean_graph: GraphStore) -> GraphStore:
    return clean_graph


def write_boards(store: GraphStore, prefix: str, boards: dict[str, list[tuple[str, int]]]) -> None:
    store.add_saves(
        [
            Save(prefix + pin, prefix + board, prefix + "u", T0 + timedelta(minutes=minute))
            for board, saved in boards.items()
            for pin, minute in saved
        ]
    )


def ranked(neighbors: list[Any], prefix: str) -> list[tuple[str, float]]:
    return [(n.pin_id.removeprefix(prefix), n.score) for n in neighbors]


@pytest.fixture
def hand_graph(store: GraphStore, prefix: str) -> GraphStore:
    write_boards(store, prefix, HAND_GRAPH)
    return store


def test_co_board_ranking_without_cap(hand_graph: GraphStore, prefix: str) -> None:
    result = hand_graph.co_board_neighbors(prefix + "p", k=10, board_cap=100)
    assert ranked(result, prefix) == [
        ("a", 3.0),
        ("b", 2.0),
        ("c", 2.0),
        ("d", 1.0),
        ("g1", 1.0),
        ("g2", 1.0),
        ("g3", 1.0),
        ("g4", 1.0),
    ]


def test_board_cap_keeps_only_the_most_recent_pins_of_each_board(
    hand_graph: GraphStore, prefix: str
) -> None:
    capped = hand_graph.co_board_neighbors(prefix + "p", k=10, board_cap=3)
    assert ranked(capped, prefix) == [("a", 3.0), ("b", 2.0), ("c", 2.0), ("g3", 1.0), ("g4", 1.0)]
    tight = hand_graph.co_board_neighbors(prefix + "p", k=10, board_cap=1)
    assert ranked(tight, prefix) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]


def test_k_truncates_after_ranking(hand_graph: GraphStore, prefix: str) -> None:
    top = hand_graph.co_board_neighbors(prefix + "p", k=2, board_cap=100)
    assert ranked(top, prefix) == [("a", 3.0), ("b", 2.0)]


def test_batched_co_board_matches_single_queries(hand_graph: GraphStore, prefix: str) -> None:
    pins = [prefix + name for name in ("p", "c", "x", "unknown")]
    batch = hand_graph.co_board_neighbors_batch(pins, k=5, board_cap=3)
    assert list(batch) == pins
    for pin in pins:
        assert batch[pin] == hand_graph.co_board_neighbors(pin, k=5, board_cap=3)
    assert ranked(batch[prefix + "x"], prefix) == [("y", 1.0)]
    assert batch[prefix + "unknown"] == []


def test_board_adjacency_reads(hand_graph: GraphStore, prefix: str) -> None:
    assert hand_graph.board_ids([prefix + "c", prefix + "nope"]) == {
        prefix + "c": [prefix + "B1", prefix + "B4"],
        prefix + "nope": [],
    }
    assert hand_graph.pin_ids_of_boards([prefix + "B4"], cap=2) == {
        prefix + "B4": [prefix + "c", prefix + "g4"]
    }


def test_random_walks_are_deterministic_under_a_seed(hand_graph: GraphStore, prefix: str) -> None:
    pins = [prefix + "p", prefix + "x"]
    first = hand_graph.random_walk_neighbors(pins, num_walks=50, walk_length=3, seed=42)
    again = hand_graph.random_walk_neighbors(pins, num_walks=50, walk_length=3, seed=42)
    other = hand_graph.random_walk_neighbors(pins, num_walks=50, walk_length=3, seed=43)
    assert first == again
    assert first != other
    assert ranked(first[prefix + "x"], prefix) == [("y", 1.0)]


def test_random_walks_match_in_memory_walks_over_the_exported_saves(
    hand_graph: GraphStore, prefix: str
) -> None:
    """The Neo4j-backed walk is the pure walk: same graph, same seed, same neighbors."""
    pairs = [
        (e.pin_id, e.board_id) for page in hand_graph.iter_saves(id_prefix=prefix) for e in page
    ]
    in_memory = walk_neighbors(
        BipartiteGraph.from_saves(pairs),
        [prefix + "p", prefix + "g1"],
        WalkParams(num_walks=40, walk_length=4, restart_prob=0.2, top_k=10),
        seed=7,
    )
    from_neo4j = hand_graph.random_walk_neighbors(
        [prefix + "p", prefix + "g1"],
        num_walks=40,
        walk_length=4,
        restart_prob=0.2,
        top_k=10,
        seed=7,
        board_cap=1000,
    )
    assert from_neo4j == in_memory


def test_random_walks_favour_closer_pins(store: GraphStore, prefix: str) -> None:
    # chain p0 -C0- p1 -C1- p2 -C2- p3: p1 is one hop away, p2 two, p3 three
    write_boards(
        store,
        prefix,
        {
            "C0": [("p0", 0), ("p1", 0)],
            "C1": [("p1", 0), ("p2", 0)],
            "C2": [("p2", 0), ("p3", 0)],
        },
    )
    # 2000 walks: p3 (three hops away) is visited ~40 times in expectation, whatever the
    # random prefix does to the streams, so the strict ordering below cannot flake
    result = store.random_walk_neighbors(
        [prefix + "p0"], num_walks=2000, walk_length=4, restart_prob=0.3, seed=1
    )
    order = [pin for pin, _ in ranked(result[prefix + "p0"], prefix)]
    assert order == ["p1", "p2", "p3"]
    scores = [score for _, score in ranked(result[prefix + "p0"], prefix)]
    assert scores[0] > scores[1] > scores[2] > 0
    assert sum(scores) == pytest.approx(1.0)


def oracle_co_board(
    saves: list[tuple[str, str, int]], pin: str, k: int, cap: int
) -> list[tuple[str, float]]:
    """The documented ranking, computed naively: on each of the pin's boards keep the `cap`
    most recently saved other pins (ties by pin_id), count boards per pin, rank."""
    last: dict[tuple[str, str], int] = {}
    for p, b, minute in saves:
        last[(p, b)] = max(minute, last.get((p, b), minute))
    scores: dict[str, int] = {}
    for board in {b for (p, b) in last if p == pin}:
        others = sorted(
            ((-m, p) for (p, b), m in last.items() if b == board and p != pin),
        )[:cap]
        for _, other in others:
            scores[other] = scores.get(other, 0) + 1
    ranked_scores = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [(p, float(s)) for p, s in ranked_scores]


def test_co_board_matches_a_naive_oracle_on_a_random_skewed_graph(
    store: GraphStore, prefix: str
) -> None:
    rng = random.Random(2026)
    boards = [f"B{i:02d}" for i in range(12)]
    weights = [1 / (rank + 1) for rank in range(len(boards))]  # a few big boards
    saves = [
        (f"p{rng.randrange(60):02d}", rng.choices(boards, weights)[0], minute)
        for minute in range(400)
    ]
    store.add_saves(
        [Save(prefix + p, prefix + b, prefix + "u", T0 + timedelta(minutes=m)) for p, b, m in saves]
    )
    pins = sorted({p for p, _, _ in saves})[:15]
    for cap in (2, 5, 1000):
        batch = store.co_board_neighbors_batch([prefix + p for p in pins], k=8, board_cap=cap)
        for pin in pins:
            assert ranked(batch[prefix + pin], prefix) == oracle_co_board(saves, pin, 8, cap), (
                pin,
                cap,
            )


def test_a_shared_cache_reuses_adjacency_and_freezes_what_it_has_seen(
    hand_graph: GraphStore, prefix: str
) -> None:
    # The walks' RNG is seeded per start pin, and the pin ids carry this run's random prefix,
    # so which pins a run reaches varies between runs. The assertions are therefore about the
    # adjacency each cache holds, not about a lucky visit: with 200 walks from p (4 boards) no
    # walker standing on B1 has probability below (3/4)^200 ~ 1e-25.
    walk = partial(hand_graph.random_walk_neighbors, [prefix + "p"], 200, 3, seed=3, board_cap=1000)
    cache = BipartiteGraph()
    cold = walk()
    warm_first = walk(cache=cache)
    assert warm_first == cold
    assert cache.knows_pin(prefix + "p") and cache.knows_board(prefix + "B1")

    # a new pin on p's board: fresh adjacency has it; the cached adjacency of B1 does not
    hand_graph.add_saves([Save(prefix + "new", prefix + "B1", prefix + "u", T0)])
    fresh_cache = BipartiteGraph()
    walk(cache=fresh_cache)
    assert prefix + "new" in fresh_cache.pins_of(prefix + "B1")
    assert prefix + "new" not in cache.pins_of(prefix + "B1")
    assert walk(cache=cache) == cold
