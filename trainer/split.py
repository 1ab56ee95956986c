"""Cold-start split: hold pins out *with all their edges*, as a brand-new pin would arrive.

The held-out pins are what the evaluation queries with; the training pins are the candidates.
A held-out pin is only eligible if, in the full graph, it shares a board with at least one
training pin — otherwise it has no relevant answer and would only add noise to the metrics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from trainer.dataset import Dataset, SaveRecord


@dataclass
class ColdStartSplit:
    train_pin_ids: list[str]
    heldout_pin_ids: list[str]
    train_saves: list[SaveRecord]  # edges among training pins only
    relevant: dict[str, set[str]]  # held-out pin -> training pins sharing a board (full graph)


def pins_by_board(saves: list[SaveRecord]) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for save in saves:
        members.setdefault(save.board_id, set()).add(save.pin_id)
    return members


def cold_start_split(dataset: Dataset, heldout_fraction: float, seed: int) -> ColdStartSplit:
    """Deterministic under `seed`; pins without any save always stay in training."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError("heldout_fraction must be in (0, 1)")
    rng = random.Random(seed)
    saved = sorted({s.pin_id for s in dataset.saves})
    n_heldout = max(1, round(heldout_fraction * len(saved)))
    heldout = set(rng.sample(saved, k=min(n_heldout, len(saved))))

    members = pins_by_board(dataset.saves)
    boards_of = dataset.boards_of()
    relevant: dict[str, set[str]] = {}
    for pin_id in sorted(heldout):
        co = set().union(*(members[b] for b in boards_of.get(pin_id, ()))) - heldout
        if co:
            relevant[pin_id] = co
    # Held-out pins with no training co-board pin stay out of training (they are new pins)
    # but are not queried: they have no right answer.
    train_ids = [p.pin_id for p in dataset.pins if p.pin_id not in heldout]
    train_saves = [s for s in dataset.saves if s.pin_id not in heldout]
    return ColdStartSplit(
        train_pin_ids=train_ids,
        heldout_pin_ids=sorted(relevant),
        train_saves=train_saves,
        relevant=relevant,
    )
