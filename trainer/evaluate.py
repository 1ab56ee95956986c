"""Cold-start evaluation: can a pin with no edges find the pins it will be saved with?

Queries are the held-out pins (removed from training with all their edges), embedded from
content alone. Candidates are the training pins. Relevant = training pins that share a board
with the query in the *full* graph. Also text→pin Recall@10: a held-out pin's text embedding
must find that pin's own pin embedding among all pins (known-item search).

Every report carries the baselines: random vectors, a colour histogram of the image (image
only, no learning), the frozen off-the-shelf MiniLM text tower (mean-pooled over title +
description, both sides text), and optionally the same model trained without neighbor alignment
(the ablation). Each model is scored per head too: `model` is the `pin` head (what the stream
indexes), `model.text` and `model.image` query and rank with that head alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoder.model import PinClipModel
from encoder.preprocess import pin_text
from trainer.baselines import (
    colour_histogram_embeddings,
    minilm_text_embeddings,
    random_embeddings,
)
from trainer.data import load_or_blank
from trainer.dataset import Dataset, PinRecord
from trainer.metrics import retrieval_metrics
from trainer.split import ColdStartSplit, cold_start_split

__all__ = [
    "Embeddings",
    "EvalIndex",
    "embed_with_model",
    "evaluate",
    "minilm_text_embeddings",
    "model_rows",
    "random_embeddings",
    "score",
]

EVAL_FILE = "eval.json"
KS = (1, 10, 50)


@dataclass
class Embeddings:
    image: np.ndarray
    text: np.ndarray
    pin: np.ndarray


@torch.no_grad()
def embed_with_model(
    model: PinClipModel, dataset: Dataset, pins: Sequence[PinRecord], batch_size: int = 64
) -> Embeddings:
    model.eval()
    image_pre, text_pre = model.image_preprocessor(), model.text_preprocessor()
    device = next(model.parameters()).device
    chunks: dict[str, list[np.ndarray]] = {"image": [], "text": [], "pin": []}
    for start in range(0, len(pins), batch_size):
        part = pins[start : start + batch_size]
        pixels = np.stack(
            [load_or_blank(image_pre, dataset.read_image_bytes(p), p.pin_id) for p in part]
        )
        ids, mask = text_pre.encode_pins([p.title for p in part], [p.description for p in part])
        out = model(
            torch.from_numpy(pixels).to(device),
            torch.from_numpy(ids).to(device),
            torch.from_numpy(mask).to(device),
        )
        for name in chunks:
            chunks[name].append(getattr(out, name).float().cpu().numpy())
    return Embeddings(**{k: np.concatenate(v) for k, v in chunks.items()})


@dataclass
class EvalIndex:
    """Row positions of queries and candidates in one `pins` list, and relevance as indices."""

    pins: list[PinRecord]
    query_rows: np.ndarray
    candidate_rows: np.ndarray
    relevant: list[set[int]]  # per query: positions within candidate_rows

    @classmethod
    def build(cls, dataset: Dataset, split: ColdStartSplit) -> EvalIndex:
        pins = dataset.pins
        row = {p.pin_id: i for i, p in enumerate(pins)}
        candidates = np.array([row[p] for p in split.train_pin_ids], dtype=np.int64)
        cand_pos = {p: i for i, p in enumerate(split.train_pin_ids)}
        queries = np.array([row[p] for p in split.heldout_pin_ids], dtype=np.int64)
        relevant = [{cand_pos[r] for r in split.relevant[q]} for q in split.heldout_pin_ids]
        return cls(list(pins), queries, candidates, relevant)


def score(
    index: EvalIndex, pin: np.ndarray, text_query: np.ndarray | None = None
) -> dict[str, float]:
    """Cold-start metrics from per-pin vectors (rows aligned with `index.pins`)."""
    metrics = retrieval_metrics(
        pin[index.query_rows], pin[index.candidate_rows], index.relevant, KS
    )
    if text_query is not None:
        pool = np.concatenate([index.candidate_rows, index.query_rows])
        offset = len(index.candidate_rows)
        own = [{offset + i} for i in range(len(index.query_rows))]
        known = retrieval_metrics(text_query[index.query_rows], pin[pool], own, (10,))
        metrics["text_to_pin@10"] = known["recall@10"]
    return metrics


def model_rows(name: str, index: EvalIndex, emb: Embeddings) -> dict[str, dict[str, float]]:
    """`name` (pin head, plus known-item text→pin) and `name.text` / `name.image` (one head)."""
    return {
        name: score(index, emb.pin, emb.text),
        f"{name}.text": score(index, emb.text),
        f"{name}.image": score(index, emb.image),
    }


def evaluate(
    dataset: Dataset,
    model_dir: str | Path,
    heldout_fraction: float,
    split_seed: int,
    ablation_dir: str | Path | None = None,
    baselines: Sequence[str] = ("random", "colour_histogram", "minilm_text"),
    seed: int = 0,
    minilm_cache: np.ndarray | None = None,
) -> dict[str, Any]:
    """Report with one row per system; `model` is the one under test."""
    split = cold_start_split(dataset, heldout_fraction, split_seed)
    index = EvalIndex.build(dataset, split)
    rows: dict[str, dict[str, float]] = {}
    model = PinClipModel.load(model_dir)
    rows.update(model_rows("model", index, embed_with_model(model, dataset, index.pins)))
    if ablation_dir is not None:
        ablation = embed_with_model(PinClipModel.load(ablation_dir), dataset, index.pins)
        rows.update(model_rows("no_neighbor", index, ablation))
    if "random" in baselines:
        vecs = random_embeddings(len(index.pins), model.config.embed_dim, seed)
        rows["random"] = score(
            index, vecs, random_embeddings(len(index.pins), vecs.shape[1], seed + 1)
        )
    if "colour_histogram" in baselines:
        images = [dataset.read_image_bytes(p) for p in index.pins]
        rows["colour_histogram"] = score(index, colour_histogram_embeddings(images))
    if "minilm_text" in baselines:
        texts = minilm_cache
        if texts is None:
            texts = minilm_text_embeddings([pin_text(p.title, p.description) for p in index.pins])
        rows["minilm_text"] = score(index, texts)
    return {
        "split": {
            "heldout_fraction": heldout_fraction,
            "split_seed": split_seed,
            "queries": len(index.query_rows),
            "candidates": len(index.candidate_rows),
        },
        "metric_notes": "recall@K = |rel ∩ topK| / min(K, |rel|); text_to_pin = known-item",
        "rows": rows,
        "cold_start_recall@10": rows["model"]["recall@10"],
        "cold_start_mrr": rows["model"]["mrr"],
    }


def write_report(report: dict[str, Any], model_dir: str | Path) -> Path:
    path = Path(model_dir) / EVAL_FILE
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table (also what the CLI prints through rich)."""
    cols = ["recall@1", "recall@10", "recall@50", "mrr", "text_to_pin@10"]
    lines = [f"{'system':<20}" + "".join(f"{c:>16}" for c in cols)]
    for name, row in report["rows"].items():
        cells = "".join(f"{row[c]:>16.4f}" if c in row else f"{'n/a':>16}" for c in cols)
        lines.append(f"{name:<20}{cells}")
    return "\n".join(lines)
