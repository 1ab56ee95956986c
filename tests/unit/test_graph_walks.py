"""graph_store.walks: pure random walks over an in-memory Pin–Board graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from graph_store.walks import BipartiteGraph, WalkParams, top_visited, walk_neighbors, walk_visits

# A chain: p0 -b0- p1 -b1- p2 -b2- p3 (each board holds two neighbouring pins).
CHAIN = [("p0", "b0"), ("p1", "b0"), ("p1", "b1"), ("p2", "b1"), ("p2", "b2"), ("p3", "b2")]

# Two communities joined by one bridge pin (c0), plus noise.
COMMUNITIES = [
    *[(f"a{i}", "A1") for i in range(5)],
    *[(f"a{i}", "A2") for i in range(2, 7)],
    ("c0", "A2"),
    ("c0", "B1"),
    *[(f"b{i}", "B1") for i in range(6)],
    *[(f"b{i}", "B2") for i in range(3, 8)],
]


def test_from_saves_dedupes_and_sorts_adjacency() -> None:
    graph = BipartiteGraph.from_saves([("p2", "b1"), ("p1", "b1"), ("p1", "b1"), ("p1", "b0")])
    assert graph.pins_of("b1") == ("p1", "p2")
    assert graph.boards_of("p1") == ("b0", "b1")
    assert graph.boards_of("unknown") == ()
    assert (graph.num_pins, graph.num_boards) == (2, 2)


def test_only_neighbor_gets_every_visit() -> None:
    graph = BipartiteGraph.from_saves([("p0", "b0"), ("p1", "b0")])
    result = walk_neighbors(graph, ["p0"], WalkParams(num_walks=10, walk_length=3), seed=1)
    assert [n.pin_id for n in result["p0"]] == ["p1"]
    assert result["p0"][0].score == 1.0


def test_start_pin_is_never_its_own_neighbor() -> None:
    graph = BipartiteGraph.from_saves(COMMUNITIES)
    visits = walk_visits(graph, ["a3"], WalkParams(num_walks=50, walk_length=5), seed=3)
    assert "a3" not in visits["a3"]
    assert sum(visits["a3"].values()) > 0


def test_pin_without_boards_has_no_neighbors() -> None:
    graph = BipartiteGraph.from_saves(CHAIN)
    assert walk_neighbors(graph, ["lonely"], WalkParams(), seed=0) == {"lonely": []}


def test_same_seed_same_result_and_other_seed_differs() -> None:
    graph = BipartiteGraph.from_saves(COMMUNITIES)
    params = WalkParams(num_walks=40, walk_length=4, restart_prob=0.2, top_k=50)
    first = walk_visits(graph, ["a0", "b5"], params, seed=7)
    again = walk_visits(graph, ["a0", "b5"], params, seed=7)
    other = walk_visits(graph, ["a0", "b5"], params, seed=8)
    assert first == again
    assert first != other


def test_result_of_a_pin_does_not_depend_on_its_batch() -> None:
    graph = BipartiteGraph.from_saves(COMMUNITIES)
    params = WalkParams(num_walks=30, walk_length=3, top_k=50)
    alone = walk_neighbors(graph, ["a4"], params, seed=5)
    batched = walk_neighbors(graph, ["b1", "c0", "a4", "b1"], params, seed=5)
    assert batched["a4"] == alone["a4"]
    assert list(batched) == ["b1", "c0", "a4"]


def test_closer_pins_collect_more_visits() -> None:
    graph = BipartiteGraph.from_saves(CHAIN)
    visits = walk_visits(
        graph, ["p0"], WalkParams(num_walks=400, walk_length=4, restart_prob=0.3), seed=11
    )["p0"]
    assert visits["p1"] > visits["p2"] > visits["p3"] > 0


def test_walks_stay_mostly_in_their_community() -> None:
    graph = BipartiteGraph.from_saves(COMMUNITIES)
    params = WalkParams(num_walks=200, walk_length=3, restart_prob=0.3, top_k=5)
    top = [n.pin_id for n in walk_neighbors(graph, ["a0"], params, seed=2)["a0"]]
    assert all(pin.startswith("a") for pin in top)


def test_more_restart_keeps_walks_closer() -> None:
    graph = BipartiteGraph.from_saves(CHAIN)

    def far_share(restart: float) -> float:
        params = WalkParams(num_walks=500, walk_length=6, restart_prob=restart)
        visits = walk_visits(graph, ["p0"], params, seed=4)["p0"]
        return (visits["p2"] + visits["p3"]) / sum(visits.values())

    assert far_share(0.7) < far_share(0.0)


def test_top_visited_ranks_by_count_then_pin_id_and_normalises() -> None:
    from collections import Counter

    ranked = top_visited(Counter({"z": 2, "a": 2, "m": 4}), top_k=2)
    assert [(n.pin_id, n.score) for n in ranked] == [("m", 0.5), ("a", 0.25)]


class RecordingLoader:
    """An AdjacencyLoader over a full graph that records what the walk asked for."""

    def __init__(self, graph: BipartiteGraph) -> None:
        self.graph = graph
        self.pin_calls: list[list[str]] = []
        self.board_calls: list[list[str]] = []

    def boards_of_pins(self, pin_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        self.pin_calls.append(list(pin_ids))
        return {p: self.graph.boards_of(p) for p in pin_ids if self.graph.knows_pin(p)}

    def pins_of_boards(self, board_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        self.board_calls.append(list(board_ids))
        return {b: self.graph.pins_of(b) for b in board_ids}


def test_lazy_loading_matches_the_full_graph_and_fetches_each_node_once() -> None:
    full = BipartiteGraph.from_saves(COMMUNITIES)
    params = WalkParams(num_walks=25, walk_length=4, restart_prob=0.25, top_k=50)
    expected = walk_neighbors(full, ["a1", "b2", "missing"], params, seed=9)

    loader = RecordingLoader(full)
    lazy = walk_neighbors(BipartiteGraph(), ["a1", "b2", "missing"], params, seed=9, loader=loader)

    assert lazy == expected
    assert len(loader.pin_calls) <= params.walk_length
    assert len(loader.board_calls) <= params.walk_length
    fetched_pins = [p for call in loader.pin_calls for p in call]
    fetched_boards = [b for call in loader.board_calls for b in call]
    assert len(fetched_pins) == len(set(fetched_pins))
    assert len(fetched_boards) == len(set(fetched_boards))
    assert "missing" in fetched_pins


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_walks": 0},
        {"walk_length": 0},
        {"top_k": 0},
        {"restart_prob": 1.0},
        {"restart_prob": -0.1},
    ],
)
def test_walk_params_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WalkParams(**kwargs)  # type: ignore[arg-type]


def test_in_memory_walks_do_not_load_the_neo4j_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from graph_store.walks import BipartiteGraph, WalkParams, walk_neighbors\n"
        "import graph_store\n"
        "g = BipartiteGraph.from_saves([('a', 'b'), ('c', 'b')])\n"
        "assert walk_neighbors(g, ['a'], WalkParams(), seed=0)['a'][0].pin_id == 'c'\n"
        "assert 'neo4j' not in sys.modules, 'neo4j was imported'\n"
        "graph_store.GraphStore\n"
        "assert 'neo4j' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
