"""The supervised linear probe (trainer.probe) that bench/quality_probe.py reports beside the
quality goals: it must learn which feature carries the board, where raw similarity cannot."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import retrieval_metrics
from trainer.probe import board_rows, linear_probe_embeddings


def _boards_hidden_in_noise(
    n_per_board: int, boards: int, noise_dims: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One informative dimension (the board's position on a line, small spread) among many
    loud noise dimensions: cosine nearest neighbours on the raw vectors see mostly noise."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(boards), n_per_board)
    signal = label[:, None] * 1.0 + rng.normal(0, 0.1, (len(label), 1))
    noise = rng.normal(0, 3.0, (len(label), noise_dims))
    return np.hstack([signal, noise]), label


def _recall_at_10(emb: np.ndarray, label: np.ndarray, queries: np.ndarray) -> float:
    candidates = np.setdiff1d(np.arange(len(label)), queries)
    relevant = [{int(j) for j in np.flatnonzero(label[candidates] == label[q])} for q in queries]
    return retrieval_metrics(emb[queries], emb[candidates], relevant, (10,))["recall@10"]


def test_probe_finds_the_board_signal_that_raw_similarity_misses() -> None:
    x, label = _boards_hidden_in_noise(n_per_board=150, boards=4, noise_dims=20, seed=0)
    queries = np.arange(0, len(label), 6)  # every sixth pin is new
    train = np.setdiff1d(np.arange(len(label)), queries)
    emb = linear_probe_embeddings(x, train, [f"b{label[i]}" for i in train])

    assert emb.shape == (len(label), 4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    raw = _recall_at_10(x / np.linalg.norm(x, axis=1, keepdims=True), label, queries)
    probed = _recall_at_10(emb, label, queries)
    assert raw < 0.6, (raw, probed)
    assert probed > 0.95, (raw, probed)


def test_a_pin_on_two_boards_is_a_training_row_for_each() -> None:
    rows, labels = board_rows(["a", "b", "c"], {"a": {"x", "y"}, "c": {"y"}})
    assert rows.tolist() == [0, 0, 2]
    assert labels == ["x", "y", "y"]


def test_one_board_is_not_a_probe() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="two boards"):
        linear_probe_embeddings(x, np.arange(10), ["only"] * 10)
