"""Graph neighbors for the neighbor-alignment objective, sampled from an in-memory graph.

Two samplers, both pure (no I/O) so they run inside DataLoader workers, off the training
thread: the graph store is read once per training run (export), never per step.

- ``CoBoardSampler``: pick one of the pin's boards, then another pin on it. Giant boards are
  down-weighted (a board is picked with probability ∝ 1/log(2+size)) because sharing a
  1000-pin board says less than sharing a 5-pin one.
- ``RandomWalkSampler``: PinSage-style pin→board→pin walks with restart; neighbors are the
  most-visited pins, sampled ∝ visit count.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable

from trainer.dataset import SaveRecord


class PinBoardGraph:
    """Bipartite adjacency: pin -> boards, board -> pins (sorted, so sampling is deterministic)."""

    def __init__(self, saves: Iterable[SaveRecord]) -> None:
        boards: dict[str, set[str]] = {}
        pins: dict[str, set[str]] = {}
        for s in saves:
            boards.setdefault(s.pin_id, set()).add(s.board_id)
            pins.setdefault(s.board_id, set()).add(s.pin_id)
        self.boards_of: dict[str, list[str]] = {p: sorted(b) for p, b in boards.items()}
        self.pins_on: dict[str, list[str]] = {b: sorted(p) for b, p in pins.items()}

    def board_set(self, pin_id: str) -> set[str]:
        return set(self.boards_of.get(pin_id, ()))


class CoBoardSampler:
    def __init__(self, graph: PinBoardGraph) -> None:
        self.graph = graph

    def sample(self, pin_id: str, rng: random.Random) -> str | None:
        boards = [b for b in self.graph.boards_of.get(pin_id, ()) if len(self.graph.pins_on[b]) > 1]
        if not boards:
            return None
        weights = [1.0 / math.log(2 + len(self.graph.pins_on[b])) for b in boards]
        board = rng.choices(boards, weights=weights)[0]
        members = self.graph.pins_on[board]
        while True:
            other = members[rng.randrange(len(members))]
            if other != pin_id:
                return other


class RandomWalkSampler:
    """Top-k visited pins over ``num_walks`` walks of ``walk_length`` pin→board→pin hops."""

    def __init__(
        self,
        graph: PinBoardGraph,
        num_walks: int = 20,
        walk_length: int = 3,
        restart_prob: float = 0.3,
        top_k: int = 10,
    ) -> None:
        self.graph = graph
        self.num_walks = num_walks
        self.walk_length = walk_length
        self.restart_prob = restart_prob
        self.top_k = top_k
        self._cache: dict[str, tuple[list[str], list[int]]] = {}

    def visits(self, pin_id: str, rng: random.Random) -> Counter[str]:
        counts: Counter[str] = Counter()
        g = self.graph
        if not g.boards_of.get(pin_id):
            return counts
        for _ in range(self.num_walks):
            here = pin_id
            for _ in range(self.walk_length):
                board_list = g.boards_of[here]
                board = board_list[rng.randrange(len(board_list))]
                members = g.pins_on[board]
                here = members[rng.randrange(len(members))]
                if here != pin_id:
                    counts[here] += 1
                if rng.random() < self.restart_prob:
                    here = pin_id
        return counts

    def sample(self, pin_id: str, rng: random.Random) -> str | None:
        if pin_id not in self._cache:
            top = self.visits(pin_id, rng).most_common(self.top_k)
            self._cache[pin_id] = ([p for p, _ in top], [c for _, c in top])
        pins, counts = self._cache[pin_id]
        if not pins:
            return None
        return rng.choices(pins, weights=counts)[0]
