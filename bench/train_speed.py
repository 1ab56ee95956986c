"""Training throughput, before vs after issue 12, in one run on the same machine state.

    .venv/bin/python bench/train_speed.py --dataset emoji --steps 40

`before`: the previous `minilm` preset as it trained (32 px ViT, MiniLM with embeddings + 2
layers frozen and run every step, images decoded every step by a DataLoader worker, batch 32).
`after`: the recommended preset (frozen MiniLM outputs and decoded images cached per dataset,
the feature-bank image tower with its banks cached per split, batch 64). Both with neighbor
alignment; samples/s counts anchors (each also encodes one neighbor). The after run's one-off
feature extraction is timed apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEFORE_MODEL = {
    "embed_dim": 128,
    "vision": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 2},
    "text": {"max_length": 32},
    "fusion": {"width": 64, "layers": 1, "heads": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="emoji")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from pinclip.logging import configure_logging
    from trainer.config import TrainConfig
    from trainer.loop import train
    from trainer.sources import build_dataset

    configure_logging(level="WARNING")
    data = str(build_dataset(args.dataset))
    with tempfile.TemporaryDirectory() as tmp:
        before = TrainConfig(
            data=data, out_dir=f"{tmp}/before", model_config=BEFORE_MODEL, steps=args.steps,
            batch_size=32, lr=1e-3, freeze_text_layers=2, threads=args.threads, progress=False,
        )  # fmt: skip
        after = TrainConfig.preset(
            data=data, out_dir=f"{tmp}/after", steps=args.steps, threads=args.threads,
            progress=False, feature_cache=f"{tmp}/features",
        )  # fmt: skip
        t0 = time.perf_counter()
        train(TrainConfig.preset(data=data, out_dir=f"{tmp}/warm", steps=0, threads=args.threads,
                                 progress=False, feature_cache=f"{tmp}/features"))  # fmt: skip
        extract_s = time.perf_counter() - t0
        rates = {name: train(cfg, resume=False).samples_per_s for name, cfg in
                 (("before", before), ("after", after))}  # fmt: skip
    print(f"dataset {args.dataset}, {args.steps} steps each, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, rate in rates.items():
        print(f"{name:<7} {rate:8.1f} samples/s")
    print(f"speed-up {rates['after'] / rates['before']:.2f}x; one-off feature extraction "
          f"{extract_s:.0f} s (then cached on disk)")  # fmt: skip


if __name__ == "__main__":
    main()
