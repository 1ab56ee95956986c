"""Losses against hand-computed small cases."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from trainer.losses import (  # noqa: E402
    InfoNCELoss,
    LossWeights,
    MultiGranularLoss,
    NeighborAlignmentLoss,
    share_board_mask,
)


def _unit(*rows: tuple[float, ...]) -> torch.Tensor:
    t = torch.tensor(rows, dtype=torch.float32)
    return t / t.norm(dim=1, keepdim=True)


def _nce_by_hand(sim: list[list[float]], scale: float, exclude: set[tuple[int, int]]) -> float:
    """½ mean over rows and over columns of -log softmax at the diagonal, skipping excluded."""
    n = len(sim)
    rows = 0.0
    for i in range(n):
        denom = sum(math.exp(scale * sim[i][j]) for j in range(n) if (i, j) not in exclude)
        rows += -math.log(math.exp(scale * sim[i][i]) / denom)
    cols = 0.0
    for j in range(n):
        denom = sum(math.exp(scale * sim[i][j]) for i in range(n) if (i, j) not in exclude)
        cols += -math.log(math.exp(scale * sim[j][j]) / denom)
    return 0.5 * (rows / n + cols / n)


def test_infonce_matches_hand_computation_2x2() -> None:
    # a = [e1, e2], b = [e1, (e1+e2)/√2]: sims [[1, .7071], [0, .7071]], scale 1/0.5 = 2.
    a = _unit((1, 0), (0, 1))
    b = _unit((1, 0), (1, 1))
    loss = InfoNCELoss(init_temperature=0.5)(a, b)
    s = 1 / math.sqrt(2)
    # Row 0: -log(e^2 / (e^2 + e^{2s})); row 1: -log(e^{2s} / (1 + e^{2s}))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(2 * s)))
    row1 = -math.log(math.exp(2 * s) / (1 + math.exp(2 * s)))
    # Col 0: -log(e^2 / (e^2 + 1)); col 1: -log(e^{2s} / (e^{2s} + e^{2s})) = log 2
    col0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    col1 = math.log(2)
    expected = 0.5 * ((row0 + row1) / 2 + (col0 + col1) / 2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_infonce_exclusion_removes_false_negative_from_denominators() -> None:
    a = _unit((1, 0, 0), (0, 1, 0), (0, 0, 1))
    b = _unit((1, 1, 0), (0, 1, 0), (1, 0, 1))
    sim = (a @ b.t()).tolist()
    exclude = torch.zeros(3, 3, dtype=torch.bool)
    exclude[0, 1] = True  # anchor 0 and neighbor 1 share a board
    exclude[2, 2] = True  # the diagonal is never excluded
    loss = InfoNCELoss(init_temperature=0.1)(a, b, exclude)
    expected = _nce_by_hand(sim, 10.0, {(0, 1)})
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    plain = InfoNCELoss(init_temperature=0.1)(a, b)
    assert plain.item() == pytest.approx(_nce_by_hand(sim, 10.0, set()), rel=1e-5)
    assert loss.item() < plain.item()


def test_temperature_is_learnable_and_clamped() -> None:
    loss_fn = InfoNCELoss(init_temperature=0.001, max_scale=50.0)
    assert loss_fn.scale().item() == pytest.approx(50.0)
    a = _unit((1, 0), (0, 1))
    loss_fn = InfoNCELoss(init_temperature=0.5)
    loss_fn(a, a).backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.item() != 0.0


def test_multigranular_weights_and_missing_descriptions() -> None:
    image = _unit((1, 0), (0, 1), (1, 1))
    title = _unit((1, 0.1), (0.1, 1), (1, 0.9))
    text, pin, desc = title, image, _unit((1, 0), (0, 1), (0, 1))
    w = LossWeights(image_title=2.0, image_description=1.0, pin_image=0.0, pin_text=0.5)
    parts = MultiGranularLoss(w, init_temperature=0.5)(
        image, text, pin, title, desc, has_description=torch.tensor([True, True, False])
    )
    assert set(parts) == {"image_title", "image_description", "pin_text"}
    assert parts["image_title"].item() == pytest.approx(
        2.0 * _nce_by_hand((image @ title.t()).tolist(), 2.0, set()), rel=1e-5
    )
    sub = (image[:2] @ desc[:2].t()).tolist()
    assert parts["image_description"].item() == pytest.approx(
        _nce_by_hand(sub, 2.0, set()), rel=1e-5
    )


def test_neighbor_loss_is_weighted_sum_and_zero_weight_disables() -> None:
    anchor = _unit((1, 0), (0, 1), (1, 1))
    n_pin = _unit((1, 0.2), (0.3, 1), (1, 0.8))
    n_img = _unit((1, 0), (0, 1), (0.2, 1))
    n_txt = _unit((0.5, 1), (1, 0), (1, 1))
    share = share_board_mask([{"a"}, {"b"}, {"a", "c"}], [{"x"}, {"a"}, {"c"}])
    assert share.tolist() == [[False, True, False], [False, False, False], [False, True, True]]
    w = LossWeights(neighbor=2.0, neighbor_pin=1.0, neighbor_image=0.5, neighbor_text=0.25)
    parts = NeighborAlignmentLoss(w, init_temperature=0.5)(anchor, n_img, n_txt, n_pin, share)
    excl = {(0, 1), (2, 1)}
    expected = 2.0 * (
        _nce_by_hand((anchor @ n_pin.t()).tolist(), 2.0, excl)
        + 0.5 * _nce_by_hand((anchor @ n_img.t()).tolist(), 2.0, excl)
        + 0.25 * _nce_by_hand((anchor @ n_txt.t()).tolist(), 2.0, excl)
    )
    assert sum(p.item() for p in parts.values()) == pytest.approx(expected, rel=1e-5)
    off = NeighborAlignmentLoss(LossWeights(neighbor=0.0))(anchor, n_img, n_txt, n_pin, share)
    assert off == {}


def test_neighbor_loss_skips_anchors_without_neighbor() -> None:
    anchor = _unit((1, 0), (0, 1), (1, 1))
    n = _unit((1, 0.2), (0.3, 1), (1, 0.8))
    has = torch.tensor([True, False, True])
    w = LossWeights(neighbor=1.0, neighbor_pin=1.0, neighbor_image=0.0, neighbor_text=0.0)
    parts = NeighborAlignmentLoss(w, init_temperature=0.5)(anchor, n, n, n, None, has)
    kept = (anchor[has] @ n[has].t()).tolist()
    assert parts["nbr_pin"].item() == pytest.approx(_nce_by_hand(kept, 2.0, set()), rel=1e-5)
