"""Quality benchmark: does neighbor alignment help cold-start retrieval?

    .venv/bin/python bench/quality.py            # defaults: ~10 min on a 2-core CPU

Same model, data, steps, batch and lr with and without the neighbor-alignment loss (weight 1 vs
0), over several seeds; cold-start Recall@10 / MRR as mean ± sd, beside the random and frozen
MiniLM text baselines. Prints a table and writes bench/results/quality-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_RELATIVE_GAIN = 0.20  # the paper's margin, as the issue states it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pins", type=int, default=2000)
    parser.add_argument("--boards", type=int, default=200)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--model", default="small")
    parser.add_argument("--tokenizer", default="minilm", help="minilm or none (characters)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import numpy as np
    import torch

    from encoder.model import PinClipModel
    from encoder.preprocess import pin_text
    from pinclip.logging import configure_logging
    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import (
        EvalIndex,
        embed_with_model,
        minilm_text_embeddings,
        random_embeddings,
        score,
    )
    from trainer.generator import GeneratorConfig, generate
    from trainer.loop import train
    from trainer.losses import LossWeights
    from trainer.split import cold_start_split

    configure_logging(level="WARNING")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    gen = GeneratorConfig(
        num_pins=args.pins, num_boards=args.boards, image_size=32, seed=args.data_seed
    )
    tokenizer = None if args.tokenizer == "none" else args.tokenizer
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="pinclip-bench-") as tmp:
        data = Path(tmp) / "data"
        generate(data, gen)
        dataset = read_dataset(data)
        split = cold_start_split(dataset, 0.1, 0)
        index = EvalIndex.build(dataset, split)
        texts = [pin_text(p.title, p.description) for p in index.pins]
        results["minilm_text"] = [score(index, minilm_text_embeddings(texts))]
        for seed in args.seeds:
            for name, weight in (("neighbor", 1.0), ("no_neighbor", 0.0)):
                cfg = TrainConfig(
                    data=str(data),
                    out_dir=str(Path(tmp) / f"{name}-{seed}"),
                    model=args.model,
                    tokenizer=tokenizer,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    lr=args.lr,
                    warmup_steps=max(1, args.steps // 10),
                    weights=LossWeights(neighbor=weight),
                    seed=seed,
                    split_seed=0,
                    heldout_fraction=0.1,
                    threads=args.threads,
                    progress=sys.stderr.isatty(),
                )
                t0 = time.perf_counter()
                run = train(cfg, resume=False)
                emb = embed_with_model(PinClipModel.load(run.model_dir), dataset, index.pins)
                row = score(index, emb.pin, emb.text)
                row["train_s"] = time.perf_counter() - t0
                results.setdefault(name, []).append(row)
                print(
                    f"seed {seed} {name:<12} R@10 {row['recall@10']:.4f} "
                    f"MRR {row['mrr']:.4f} ({row['train_s']:.0f}s)",
                    flush=True,
                )
            dim = emb.pin.shape[1]
            results.setdefault("random", []).append(
                score(
                    index,
                    random_embeddings(len(index.pins), dim, seed),
                    random_embeddings(len(index.pins), dim, seed + 100),
                )
            )
    wall = time.perf_counter() - started

    def stat(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
        values = [r[key] for r in rows if key in r]
        if not values:
            return float("nan"), float("nan")
        return float(np.mean(values)), (float(statistics.stdev(values)) if len(values) > 1 else 0.0)

    summary = {
        name: {
            k: stat(rows, k)
            for k in ("recall@1", "recall@10", "recall@50", "mrr", "text_to_pin@10")
        }
        for name, rows in results.items()
    }
    r10_nbr, r10_abl = summary["neighbor"]["recall@10"][0], summary["no_neighbor"]["recall@10"][0]
    gain = (r10_nbr - r10_abl) / r10_abl if r10_abl > 0 else float("nan")
    print()
    print(
        f"cold start: {len(index.query_rows)} new pins vs {len(index.candidate_rows)} candidates;"
        f" {len(args.seeds)} seeds; {args.steps} steps x batch {args.batch_size}"
    )
    header = f"{'system':<13}" + "".join(
        f"{c:>20}" for c in ("recall@10", "mrr", "recall@1", "recall@50", "text_to_pin@10")
    )
    print(header)
    for name in ("neighbor", "no_neighbor", "minilm_text", "random"):
        cells = ""
        for key in ("recall@10", "mrr", "recall@1", "recall@50", "text_to_pin@10"):
            mean, sd = summary[name][key]
            cells += f"{'n/a':>20}" if mean != mean else f"{f'{mean:.4f} ± {sd:.4f}':>20}"
        print(f"{name:<13}{cells}")
    verdict = "meets" if gain >= GOAL_RELATIVE_GAIN else "misses"
    print(
        f"\nneighbor alignment: {gain:+.1%} relative Recall@10 vs the ablation "
        f"({verdict} the >= {GOAL_RELATIVE_GAIN:.0%} goal); wall {wall:.0f}s"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"quality-{stamp}.json"
    payload = {
        "command": " ".join(["python", *sys.argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "generator": asdict(gen),
        "machine": {
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
        },
        "queries": len(index.query_rows),
        "candidates": len(index.candidate_rows),
        "per_seed": results,
        "summary": {
            n: {k: {"mean": m, "sd": s} for k, (m, s) in v.items()} for n, v in summary.items()
        },
        "relative_recall@10_gain": gain,
        "goal": GOAL_RELATIVE_GAIN,
        "wall_s": wall,
    }
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
