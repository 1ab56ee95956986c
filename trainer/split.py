"""Cold-start split: hold pins out *with all their edges*, as a brand-new pin would arrive.

Near-duplicates (pins sharing a `group`: skin-tone variants, one icon in several styles) are
held out together, whole groups at a time: otherwise a query's near-copy would sit among the
candidates, on the same board, and retrieval would measure copy detection instead of cold start.

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
    """Deterministic under `seed`; whole near-duplicate groups are held out until about
    `heldout_fraction` of the saved pins are; groups without any save stay in training."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError("heldout_fraction must be in (0, 1)")
    boards_of = dataset.boards_of()
    groups: dict[str, list[str]] = {}
    for pin in dataset.pins:
        groups.setdefault(pin.group or f"\0{pin.pin_id}", []).append(pin.pin_id)
    eligible = sorted(g for g, members in groups.items() if any(m in boards_of for m in members))
    target = max(1, round(heldout_fraction * len(boards_of)))
    heldout: set[str] = set()
    n_saved = 0
    for group in random.Random(seed).sample(eligible, k=len(eligible)):
        if n_saved >= target:
            break
        heldout.update(groups[group])
        n_saved += sum(m in boards_of for m in groups[group])

    members = pins_by_board(dataset.saves)
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
