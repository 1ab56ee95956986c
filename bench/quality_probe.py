"""What the inputs carry: a supervised linear probe beside the quality goals (issue 12).

    .venv/bin/python bench/quality_probe.py                      # emoji, clipart, mdi; seeds 0-2
    .venv/bin/python bench/quality_probe.py --datasets emoji --seeds 0

Same datasets, cold-start splits and baselines as bench/quality.py. Instead of training the
model, it fits a logistic regression from frozen features to the training pins' boards (the
relevance labels themselves; `trainer.probe`) and scores each pin's predicted board
distribution: over frozen MiniLM text, over the frozen image features the preset's image tower
starts from (`--model stem`, the default: the pretrained MobileNetV2's pooled 1,280-d vector;
`--model minilm`: the feature bank, fitted unsupervised on the training images), and over
both (each block L2-normalised, the image block at half weight). Printed beside what each
goal asks for in absolute Recall@10 (1.35 × MiniLM, 2 × colour histogram).
Results are cached per dataset and seed under --work; writes bench/results/probe-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality import (  # noqa: E402
    GOALS,
    REPORT_ONLY,
    _cached,
    baseline_scores,
    common_parser,
    write_results,
)

PROBES = ("probe.text", "probe.image", "probe.text+image")
IMAGE_WEIGHT = 0.5


def frozen_features(dataset: Any, index: Any, work: Path, preset: str) -> dict[str, np.ndarray]:
    """MiniLM on title + description and the preset's image bank, rows aligned with index.pins;
    the bank's dictionary and whitening are fitted on the candidates (training pins) only."""
    from encoder.mobilenet import LAST_CHANNELS
    from encoder.model import PinClipModel
    from encoder.preprocess import pin_text
    from encoder.stem_vit import PretrainedStemTower
    from trainer.baselines import minilm_text_embeddings
    from trainer.config import TrainConfig
    from trainer.features import build_features

    rest = np.setdiff1d(np.arange(len(index.pins)), index.candidate_rows)
    order = np.concatenate([index.candidate_rows, rest])  # training pins first: they fit it
    pins = [index.pins[i] for i in order]
    cfg = TrainConfig.preset(preset)
    model = PinClipModel(cfg.pinclip_config(), cfg.tokenizer_json())
    feats = build_features(model, dataset, pins, work / "features", len(index.candidate_rows))
    view = feats.pixels[0].float()
    if isinstance(model.vision, PretrainedStemTower):
        view = view[:, -LAST_CHANNELS:]  # the pooled vector, not the 7×7 bottleneck tokens
    bank = np.empty((len(pins), view.shape[-1]), dtype=np.float32)
    bank[order] = view.numpy()
    text = minilm_text_embeddings([pin_text(p.title, p.description) for p in index.pins])
    return {"text": text, "image": bank}


def probe_scores(dataset: Any, index: Any, work: Path, c: float, preset: str) -> dict[str, Any]:
    from trainer.evaluate import score
    from trainer.probe import board_rows, linear_probe_embeddings

    unit = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in
            frozen_features(dataset, index, work, preset).items()}  # fmt: skip
    # The image block at half weight: [1, ½] measured 0.8625 vs [1, 1] 0.8481 on emoji seed 0.
    feats = {**unit, "text+image": np.hstack([unit["text"], IMAGE_WEIGHT * unit["image"]])}
    candidates = [index.pins[i].pin_id for i in index.candidate_rows]
    rows, labels = board_rows(candidates, dataset.boards_of())
    out: dict[str, Any] = {}
    for name in ("text", "image", "text+image"):
        t0 = time.perf_counter()
        emb = linear_probe_embeddings(feats[name], index.candidate_rows[rows], labels, c)
        out[f"probe.{name}"] = {**score(index, emb), "fit_s": time.perf_counter() - t0}
    return out


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, list[float]]:
    from trainer.dataset import read_dataset
    from trainer.evaluate import EvalIndex
    from trainer.sources import build_dataset
    from trainer.split import cold_start_split

    dataset = read_dataset(build_dataset(name, args.datasets_dir, log=print))
    recall: dict[str, list[float]] = {}
    for seed in args.seeds:
        index = EvalIndex.build(dataset, cold_start_split(dataset, args.heldout_fraction, seed))
        found = _cached(
            args.work / name / f"baselines-seed{seed}.json",
            partial(baseline_scores, dataset, index, seed),
        )
        found.update(
            _cached(
                args.work / name / f"probe-{args.model}-seed{seed}-c{args.c:g}.json",
                partial(probe_scores, dataset, index, args.work, args.c, args.model),
            )
        )
        for system in ("minilm_text", "colour_histogram", *PROBES):
            recall.setdefault(system, []).append(float(found[system]["recall@10"]))
        print(f"{name} seed {seed}: " + ", ".join(f"{s} {recall[s][-1]:.4f}" for s in recall))
    return recall


def print_table(name: str, recall: dict[str, list[float]]) -> None:
    def cell(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.4f} ± {sd:.4f}"

    mean = {s: statistics.fmean(v) for s, v in recall.items()}
    tag = " (final reporting only)" if name in REPORT_ONLY else ""
    print(f"\n{name}{tag}: Recall@10 over {len(recall['minilm_text'])} seeds")
    for system, values in recall.items():
        print(f"{system:<20}{cell(values):>20}")
    pin_goal = GOALS["pin_vs_minilm"] * mean["minilm_text"]
    image_goal = GOALS["image_vs_histogram"] * mean["colour_histogram"]
    best = mean["probe.text+image"]
    print(f"  pin goal   {pin_goal:.4f}; probe.text+image {best:.4f} = "
          f"{best / mean['minilm_text']:.3f} × MiniLM")  # fmt: skip
    print(f"  image goal {image_goal:.4f}; probe.image {mean['probe.image']:.4f} = "
          f"{mean['probe.image'] / mean['colour_histogram']:.3f} × histogram")  # fmt: skip


def main() -> None:
    parser = common_parser(__doc__)
    parser.add_argument("--c", type=float, default=10.0, help="inverse L2 strength of the probe")
    parser.add_argument("--model", default="stem", help="preset whose frozen image features")
    parser.add_argument("--heldout-fraction", type=float, default=0.1)
    args = parser.parse_args()

    from pinclip.logging import configure_logging

    configure_logging(level="WARNING")
    started = time.perf_counter()
    results = {name: run_dataset(name, args) for name in args.datasets}
    for name, recall in results.items():
        print_table(name, recall)
    wall = time.perf_counter() - started
    print(f"\nwall {wall:.0f} s (cached seeds cost nothing); load average {os.getloadavg()}")
    write_results(args.out, "probe", {"datasets": results, "wall_s": wall})


if __name__ == "__main__":
    main()
