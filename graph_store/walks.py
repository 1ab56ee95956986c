"""PinSage-style random walks with restart over the bipartite Pin–Board graph, in pure Python.

No database here: the same code walks an in-memory graph built from (pin_id, board_id) pairs
(the trainer's dataset) and a graph that `GraphStore` fills lazily from Neo4j through an
`AdjacencyLoader`, fetching only the nodes the walkers actually reach, two queries per hop for
the whole batch.

The walk. From each start pin, `num_walks` walkers take `walk_length` hops. Before every hop a
walker jumps back to its start with probability `restart_prob`; otherwise it moves
pin → uniformly random board of the pin → uniformly random pin of that board and the pin it lands
on gets one visit (the start pin itself is never counted). A walker on a pin with no boards
restarts. A pin's importance is its share of the start's visits (PinSage's visit-count
importance); neighbors are the `top_k` pins by visits, ties broken by pin_id.

Reproducibility. Adjacency lists are kept sorted and each start pin draws from its own RNG
seeded with (seed, pin_id), so a pin's neighbors depend only on the graph and the seed — not on
which other pins share its batch, nor on the order they come in.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from graph_store.models import Neighbor


class AdjacencyLoader(Protocol):
    """Fetches adjacency for nodes a walk reaches; unknown ids may simply be left out."""

    def boards_of_pins(self, pin_ids: Sequence[str]) -> Mapping[str, Sequence[str]]: ...

    def pins_of_boards(self, board_ids: Sequence[str]) -> Mapping[str, Sequence[str]]: ...


class BipartiteGraph:
    """Pin↔board adjacency with sorted, duplicate-free neighbor lists."""

    def __init__(self) -> None:
        self._pin_boards: dict[str, tuple[str, ...]] = {}
        self._board_pins: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_saves(cls, pairs: Iterable[tuple[str, str]]) -> BipartiteGraph:
        """Build the whole graph from (pin_id, board_id) pairs; repeated pairs count once."""
        pin_boards: dict[str, set[str]] = {}
        board_pins: dict[str, set[str]] = {}
        for pin_id, board_id in pairs:
            pin_boards.setdefault(pin_id, set()).add(board_id)
            board_pins.setdefault(board_id, set()).add(pin_id)
        graph = cls()
        graph.set_pin_boards(pin_boards)
        graph.set_board_pins(board_pins)
        return graph

    def set_pin_boards(self, adjacency: Mapping[str, Iterable[str]]) -> None:
        for pin_id, boards in adjacency.items():
            self._pin_boards[pin_id] = tuple(sorted(set(boards)))

    def set_board_pins(self, adjacency: Mapping[str, Iterable[str]]) -> None:
        for board_id, pins in adjacency.items():
            self._board_pins[board_id] = tuple(sorted(set(pins)))

    def boards_of(self, pin_id: str) -> tuple[str, ...]:
        return self._pin_boards.get(pin_id, ())

    def pins_of(self, board_id: str) -> tuple[str, ...]:
        return self._board_pins.get(board_id, ())

    def knows_pin(self, pin_id: str) -> bool:
        return pin_id in self._pin_boards

    def knows_board(self, board_id: str) -> bool:
        return board_id in self._board_pins

    @property
    def num_pins(self) -> int:
        return len(self._pin_boards)

    @property
    def num_boards(self) -> int:
        return len(self._board_pins)

    def load_missing(
        self, loader: AdjacencyLoader, pin_ids: Iterable[str] = (), board_ids: Iterable[str] = ()
    ) -> None:
        """Fetch adjacency for ids not yet known (one loader call per kind); absent ids → empty."""
        pins = sorted({p for p in pin_ids if p not in self._pin_boards})
        if pins:
            fetched = loader.boards_of_pins(pins)
            self.set_pin_boards({p: fetched.get(p, ()) for p in pins})
        boards = sorted({b for b in board_ids if b not in self._board_pins})
        if boards:
            fetched = loader.pins_of_boards(boards)
            self.set_board_pins({b: fetched.get(b, ()) for b in boards})


@dataclass(frozen=True, slots=True)
class WalkParams:
    num_walks: int = 64
    walk_length: int = 3
    restart_prob: float = 0.3
    top_k: int = 20

    def __post_init__(self) -> None:
        if self.num_walks < 1 or self.walk_length < 1 or self.top_k < 1:
            raise ValueError("num_walks, walk_length and top_k must be >= 1")
        if not 0.0 <= self.restart_prob < 1.0:
            raise ValueError("restart_prob must be in [0, 1)")


def walk_visits(
    graph: BipartiteGraph,
    start_pins: Sequence[str],
    params: WalkParams,
    seed: int,
    loader: AdjacencyLoader | None = None,
) -> dict[str, Counter[str]]:
    """Visit counts per start pin. With a loader, missing adjacency is fetched hop by hop."""
    starts = list(dict.fromkeys(start_pins))
    rngs = {start: random.Random(f"{seed}:{start}") for start in starts}
    positions = {start: [start] * params.num_walks for start in starts}
    visits: dict[str, Counter[str]] = {start: Counter() for start in starts}

    for _ in range(params.walk_length):
        movers: dict[str, list[int]] = {}
        for start in starts:
            rng, walker_pins = rngs[start], positions[start]
            movers[start] = []
            for walker in range(params.num_walks):
                if rng.random() < params.restart_prob:
                    walker_pins[walker] = start
                else:
                    movers[start].append(walker)
        if loader is not None:
            graph.load_missing(loader, pin_ids=(positions[s][w] for s in starts for w in movers[s]))

        boards_chosen: dict[str, list[tuple[int, str]]] = {}
        for start in starts:
            rng, walker_pins = rngs[start], positions[start]
            boards_chosen[start] = []
            for walker in movers[start]:
                boards = graph.boards_of(walker_pins[walker])
                if boards:
                    boards_chosen[start].append((walker, boards[rng.randrange(len(boards))]))
                else:
                    walker_pins[walker] = start  # dead end: restart
        if loader is not None:
            graph.load_missing(loader, board_ids=(b for s in starts for _, b in boards_chosen[s]))

        for start in starts:
            rng, walker_pins, counts = rngs[start], positions[start], visits[start]
            for walker, board in boards_chosen[start]:
                pins = graph.pins_of(board)
                if not pins:
                    walker_pins[walker] = start
                    continue
                landed = pins[rng.randrange(len(pins))]
                walker_pins[walker] = landed
                if landed != start:
                    counts[landed] += 1
    return visits


def top_visited(counts: Counter[str], top_k: int) -> list[Neighbor]:
    """The `top_k` most visited pins, score = share of all visits, ties by pin_id."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    return [Neighbor(pin_id, count / total) for pin_id, count in ranked]


def walk_neighbors(
    graph: BipartiteGraph,
    start_pins: Sequence[str],
    params: WalkParams,
    seed: int,
    loader: AdjacencyLoader | None = None,
) -> dict[str, list[Neighbor]]:
    """Top-k neighbors by visit-count importance for each start pin (empty list: no edges)."""
    visits = walk_visits(graph, start_pins, params, seed, loader)
    return {start: top_visited(counts, params.top_k) for start, counts in visits.items()}
