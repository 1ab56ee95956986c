"""Quality benchmark on real data: cold-start Recall@10 per dataset, against what is free.

    .venv/bin/python bench/quality.py                       # emoji, clipart (dev) + mdi (report)
    .venv/bin/python bench/quality.py --datasets emoji --seeds 0

For each dataset (`pinclip datasets build`, cached): three seeds of the recommended preset with
neighbor alignment and without it (the ablation), each scored per head (`pin`, `text`,
`image`), beside random vectors, a colour histogram (image only) and frozen MiniLM on title +
description. Seeds change the held-out split *and* the training seed, so mean ± sd covers both.
Goals (issue 12): pin ≥ 1.35 × MiniLM, neighbor ≥ +20 % over the ablation, image ≥ 2 × colour
histogram. Every trained run and every baseline is cached under --work (per dataset, seed and
config hash), so an interrupted benchmark resumes where it stopped and a rerun only prints.
Prints a table per dataset and writes bench/results/quality-<time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"pin_vs_minilm": 1.35, "neighbor_gain": 0.20, "image_vs_histogram": 2.0}
DEV, REPORT_ONLY = ("emoji", "clipart"), ("mdi",)
SYSTEMS = ("model", "model.text", "model.image", "no_neighbor", "no_neighbor.text",
           "no_neighbor.image", "minilm_text", "colour_histogram", "random")  # fmt: skip


def _cached(path: Path, compute: Any) -> dict[str, Any]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)
    return dict(value)


def baseline_scores(dataset: Any, index: Any, seed: int) -> dict[str, Any]:
    from encoder.preprocess import pin_text
    from trainer.baselines import (
        colour_histogram_embeddings,
        minilm_text_embeddings,
        random_embeddings,
    )
    from trainer.evaluate import score

    texts = [pin_text(p.title, p.description) for p in index.pins]
    images = [dataset.read_image_bytes(p) for p in index.pins]
    return {
        "minilm_text": score(index, minilm_text_embeddings(texts)),
        "colour_histogram": score(index, colour_histogram_embeddings(images)),
        "random": score(index, random_embeddings(len(index.pins), 384, seed)),
    }


def trained_scores(arm: str, cfg: Any, dataset: Any, index: Any) -> dict[str, Any]:
    """Train (resuming an interrupted run), then score every head on the split's queries."""
    from encoder.model import PinClipModel
    from trainer.evaluate import embed_with_model, model_rows
    from trainer.loop import train

    t0 = time.perf_counter()
    result = train(cfg, resume=True)
    train_s = time.perf_counter() - t0
    emb = embed_with_model(PinClipModel.load(result.model_dir), dataset, index.pins)
    out: dict[str, Any] = model_rows(arm, index, emb)
    out[arm].update(train_s=train_s, samples_s=result.samples_per_s)
    return out


def run_dataset(name: str, args: argparse.Namespace, work: Path) -> dict[str, list[dict[str, Any]]]:
    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import EvalIndex
    from trainer.sources import build_dataset
    from trainer.split import cold_start_split

    data = build_dataset(name, args.datasets_dir, log=print)
    dataset = read_dataset(data)
    base = TrainConfig.preset(
        args.model, data=str(data), steps=args.steps, progress=sys.stderr.isatty(),
        threads=args.threads, feature_cache=str(work / "features"),
    )  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        cfg = replace(base, seed=seed, split_seed=seed)
        key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        index = EvalIndex.build(dataset, cold_start_split(dataset, cfg.heldout_fraction, seed))
        found = _cached(
            work / name / f"baselines-seed{seed}.json",
            partial(baseline_scores, dataset, index, seed),
        )
        for arm, weight in (("model", 1.0), ("no_neighbor", 0.0)):
            arm_cfg = replace(cfg, out_dir=str(work / name / f"{arm}-seed{seed}-{key}"))
            arm_cfg.weights = replace(cfg.weights, neighbor=weight)
            found.update(
                _cached(
                    Path(arm_cfg.out_dir) / "bench-scores.json",
                    partial(trained_scores, arm, arm_cfg, dataset, index),
                )
            )
            row = found[arm]
            print(
                f"{name} seed {seed} {arm:<12} R@10 {row['recall@10']:.4f} "
                f"({row['train_s']:.0f} s, {row['samples_s']:.0f} samples/s)",
                flush=True,
            )
        for system, row in found.items():
            rows.setdefault(system, []).append({**row, "queries": len(index.query_rows)})
    return rows


def _stat(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [float(r[key]) for r in rows if key in r]
    if not values:
        return float("nan"), float("nan")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def verdicts(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float | bool]]:
    r10 = {name: _stat(r, "recall@10")[0] for name, r in rows.items()}
    ratios = {
        "pin_vs_minilm": r10["model"] / r10["minilm_text"],
        "neighbor_gain": r10["model"] / r10["no_neighbor"] - 1,
        "image_vs_histogram": r10["model.image"] / r10["colour_histogram"],
    }
    return {k: {"value": v, "goal": GOALS[k], "met": v >= GOALS[k]} for k, v in ratios.items()}


def print_table(name: str, rows: dict[str, list[dict[str, Any]]], report_only: bool) -> None:
    cols = ("recall@10", "mrr", "recall@1", "recall@50")
    tag = " (final reporting only)" if report_only else ""
    queries = [r["queries"] for r in rows["model"]]
    print(f"\n{name}{tag}: {len(queries)} seeds, {statistics.fmean(queries):.0f} new pins a seed")
    print(f"{'system':<20}" + "".join(f"{c:>20}" for c in cols) + f"{'train s':>10}")
    for system in SYSTEMS:
        if system not in rows:
            continue
        cells = "".join(f"{'{:.4f} ± {:.4f}'.format(*_stat(rows[system], c)):>20}" for c in cols)
        train_s = _stat(rows[system], "train_s")[0]
        print(f"{system:<20}{cells}{'' if train_s != train_s else f'{train_s:>10.0f}'}")
    for goal, v in verdicts(rows).items():
        state = "met" if v["met"] else "MISSED"
        print(f"  {goal:<20} {v['value']:.3f} (goal {v['goal']}) {state}")


def main() -> None:
    parser = common_parser(__doc__)
    parser.add_argument("--model", default="stem", help="trainer preset")
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=0, help="0: the cores not busy now")
    args = parser.parse_args()

    from pinclip.logging import configure_logging

    configure_logging(level="WARNING")
    started = time.perf_counter()
    results = {name: run_dataset(name, args, args.work) for name in args.datasets}
    for name, rows in results.items():
        print_table(name, rows, name in REPORT_ONLY)
    wall = time.perf_counter() - started
    print(f"\nwall {wall:.0f} s (cached runs cost nothing); load average {os.getloadavg()}")
    datasets = {
        name: {"rows": rows, "verdicts": verdicts(rows), "report_only": name in REPORT_ONLY}
        for name, rows in results.items()
    }
    write_results(args.out, "quality", {"datasets": datasets, "wall_s": wall})


def common_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every quality benchmark shares (this one and bench/quality_probe.py)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=[*DEV, *REPORT_ONLY])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets-dir", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser


def write_results(out: Path, prefix: str, payload: dict[str, Any]) -> None:
    """bench/results/<prefix>-<UTC time>.json with the command and the machine beside it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "load_average": os.getloadavg()}  # fmt: skip
    record = {"command": " ".join(["python", *sys.argv]), "machine": machine, **payload}
    path.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
