"""Training only adds: keep the step-0 text and pin heads unless validation says otherwise.

At step 0 the residual `text` and `pin` heads rank exactly like frozen MiniLM
(`encoder/heads.py`). Training can erode that — image–text alignment without the graph term
pulled the pin head far below MiniLM on real data — and a dataset we have never seen may do
the same to any objective. So a run holds out a cold-start *validation* set of its own
(whole near-duplicate groups of the training pins, with their edges, exactly as the
evaluation holds out new pins), and at the end moves each head along the straight line from
its step-0 weights θ₀ to its trained weights θ₁,

    θ(α) = θ₀ + α · (θ₁ − θ₀),   α ∈ {0, ¼, ½, ¾, 1},

keeping the α whose cold-start Recall@10 on the validation set is highest (ties: the larger
α). α = 0 is frozen MiniLM exactly, so on validation data the kept head is never worse than
the pretrained tower, and usually α = 1 (interpolating towards the start also helps when
training overshoots, as weight-space ensembles of fine-tuned and zero-shot models do).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
import torch
from torch import Tensor, nn

from encoder.model import PinClipModel
from trainer.dataset import Dataset
from trainer.evaluate import EvalIndex
from trainer.features import PinFeatures
from trainer.metrics import retrieval_metrics
from trainer.split import ColdStartSplit, cold_start_split

log = structlog.get_logger("trainer.guard")

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIN_QUERIES = 20  # fewer validation queries than this: no guard, train on every pin
HEADS = ("pin_head", "text_head")


@dataclass
class Validation:
    """The training split minus a cold-start validation set carved from it."""

    train: ColdStartSplit  # what trains (train_pin_ids / train_saves of the inner split)
    index: EvalIndex | None  # validation queries and candidates; None: no guard


def validation_split(
    dataset: Dataset, outer: ColdStartSplit, fraction: float, seed: int
) -> Validation:
    """Holds `fraction` of the training pins' saves out, whole groups at a time, as the
    evaluation's cold-start split does; returns what trains and the validation index."""
    if fraction <= 0:
        return Validation(outer, None)
    keep = set(outer.train_pin_ids)
    sub = Dataset(
        root=dataset.root,
        pins=[p for p in dataset.pins if p.pin_id in keep],
        saves=list(outer.train_saves),
        meta=dataset.meta,
    )
    inner = cold_start_split(sub, fraction, seed + 7919)
    if len(inner.heldout_pin_ids) < MIN_QUERIES:
        log.info("guard.off", reason="too few validation queries", queries=len(inner.relevant))
        return Validation(outer, None)
    train = ColdStartSplit(
        train_pin_ids=inner.train_pin_ids,
        heldout_pin_ids=outer.heldout_pin_ids,
        train_saves=inner.train_saves,
        relevant=outer.relevant,
    )
    return Validation(train, EvalIndex.build(sub, inner))


@dataclass
class HeadChoice:
    alpha: float
    recall_at_10: dict[float, float] = field(default_factory=dict)


def head_state(model: PinClipModel) -> dict[str, dict[str, Tensor]]:
    """A copy of the guarded heads' weights (taken at step 0, before any training)."""
    return {name: copy.deepcopy(getattr(model, name).state_dict()) for name in HEADS}


def _interpolate(
    head: nn.Module, start: dict[str, Tensor], end: dict[str, Tensor], a: float
) -> None:
    head.load_state_dict({k: start[k] + a * (end[k] - start[k]) for k in end})


@torch.no_grad()
def choose_heads(
    model: PinClipModel,
    start: dict[str, dict[str, Tensor]],
    index: EvalIndex,
    embed: Callable[[], dict[str, np.ndarray]],
) -> dict[str, HeadChoice]:
    """Sets each guarded head to its best θ(α) on the validation index; returns the choices.

    `embed()` gives {"pin": [N, D], "text": [N, D]} for `index.pins` with the model as it is.
    The heads are independent (the pin head reads the text tower, not the text head), so one
    embedding pass per α scores both.
    """
    end = {name: copy.deepcopy(getattr(model, name).state_dict()) for name in HEADS}
    scores: dict[str, dict[float, float]] = {"pin_head": {}, "text_head": {}}
    for alpha in ALPHAS:
        for name in HEADS:
            _interpolate(getattr(model, name), start[name], end[name], alpha)
        emb = embed()
        for name, key in (("pin_head", "pin"), ("text_head", "text")):
            vectors = emb[key]
            metrics = retrieval_metrics(
                vectors[index.query_rows], vectors[index.candidate_rows], index.relevant, (10,)
            )
            scores[name][alpha] = metrics["recall@10"]
    choices = {}
    for name in HEADS:
        best = max(ALPHAS, key=lambda a: (round(scores[name][a], 6), a))
        _interpolate(getattr(model, name), start[name], end[name], best)
        choices[name] = HeadChoice(best, scores[name])
    log.info("guard.chosen", **{n: c.alpha for n, c in choices.items()})
    return choices


def report(choices: dict[str, HeadChoice], index: EvalIndex) -> dict[str, Any]:
    return {
        "validation_queries": len(index.query_rows),
        **{
            name: {"alpha": c.alpha, "recall@10": {str(a): r for a, r in c.recall_at_10.items()}}
            for name, c in choices.items()
        },
    }


@torch.no_grad()
def embed_cached(
    model: PinClipModel, features: PinFeatures, rows: list[int], batch_size: int = 256
) -> dict[str, np.ndarray]:
    """pin and text embeddings from the per-dataset caches (view 0: the image as served)."""
    assert features.text_tokens is not None and features.text_mask is not None
    was_training = model.training
    model.eval()
    images = features.pixels[0] if features.pixels.dim() == 3 else features.pixels
    out: dict[str, list[np.ndarray]] = {"pin": [], "text": []}
    for start in range(0, len(rows), batch_size):
        part = torch.tensor(rows[start : start + batch_size])
        mask = features.text_mask[part]
        length = max(1, int(mask.sum(1).max()))
        emb = model.embed(
            model.image_tokens_from(images[part].float()),
            features.text_tokens[part, :length].float(),
            mask[:, :length],
        )
        out["pin"].append(emb.pin.numpy())
        out["text"].append(emb.text.numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}
