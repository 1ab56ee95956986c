"""Encoder throughput and latency: raw onnxruntime, torch eager, and the micro-batcher.

    .venv/bin/python bench/encoder.py            # quick defaults, ~2-3 minutes on 2 CPU cores
    .venv/bin/python bench/encoder.py --config tiny --repeats 1 --seconds 0.5   # smoke run

Exports the chosen config (random weights: speed does not depend on them) to a temp dir, then
measures, for the image head and the pin head:
- raw onnxruntime called directly at batch sizes 1..64 — the best of these is "the limit";
- torch eager at batch 1 and the best onnxruntime batch;
- the MicroBatcher fed pre-decoded arrays by closed-loop clients at concurrency 1, 8, 64,
  once with max_batch=1 (request-at-a-time) and once micro-batched;
- EncoderService end to end (JPEG decode + tokenize + batch) at concurrency 64.
Every figure is the median of `--repeats` interleaved runs (the cores are shared).
Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Busy-waiting OpenMP threads (torch's default) collapse on cores shared with other processes;
# onnxruntime sessions here also run with spinning off, so both sides wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image, ImageDraw

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `encoder` package: put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from encoder.batcher import MicroBatcher  # noqa: E402
from encoder.config import PinClipConfig  # noqa: E402
from encoder.export import export_model  # noqa: E402
from encoder.model import PinClipModel  # noqa: E402
from encoder.preprocess import pin_text  # noqa: E402
from encoder.runtime import OnnxEncoder  # noqa: E402
from encoder.service import EncoderService, PinContent  # noqa: E402

RESULTS = _HERE / "results"
HEADS = ("image", "pin")


def synthetic_photo(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG with smooth gradients and shapes: decodes like a photo, unlike pure noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    base = rng.uniform(0, 255, 3) * x + rng.uniform(0, 255, 3) * y
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, size[0]), rng.integers(0, size[1])
        draw.ellipse(
            (x0, y0, x0 + 80, y0 + 60), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


TITLES = ["Cozy reading nook", "Easy weeknight pasta", "Boho wedding arch", "Minimal desk setup"]
DESCRIPTIONS = [
    "a window seat with cushions, warm light and a tall bookshelf",
    "garlic, lemon and spinach in twenty minutes",
    "dried flowers and linen draped over a wooden frame at sunset",
]


def contents(n: int) -> list[PinContent]:
    return [PinContent(TITLES[i % 4], DESCRIPTIONS[i % 3], synthetic_photo(i)) for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def time_calls(fn: Callable[[], object], items_per_call: int, seconds: float) -> dict[str, float]:
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        fn()
    latencies: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or len(latencies) < 3:
        t0 = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "items_per_s": len(latencies) * items_per_call / elapsed,
        "items_per_cpu_s": len(latencies) * items_per_call / cpu,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


async def closed_loop(
    submit: Callable[[int], Any], concurrency: int, seconds: float
) -> dict[str, float]:
    """`concurrency` clients, each sends its next request when the previous one returns."""
    latencies: list[float] = []
    deadline = 0.0

    async def client(index: int) -> None:
        i = index
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await submit(i)
            latencies.append(time.perf_counter() - t0)
            i += concurrency

    await asyncio.gather(*(submit(i) for i in range(min(concurrency, 4))))  # warm-up
    deadline = time.perf_counter() + seconds
    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "items_per_s": len(latencies) / elapsed,
        "items_per_cpu_s": len(latencies) / cpu,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def config_for(name: str) -> PinClipConfig:
    """`default`/`tiny` (encoder configs) or a trainer preset (`stem`: the pretrained MobileNetV2
    hybrid ViT, `minilm`: the feature-bank tower) — what `pinclip train --model NAME` serves."""
    if name == "tiny":
        return PinClipConfig.tiny()
    if name == "default":
        return PinClipConfig.default()
    from trainer.config import model_preset

    return model_preset(name)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        config = config_for(args.config)
        torch.manual_seed(0)
        self.model = PinClipModel(config).eval()
        self.tmp = tempfile.TemporaryDirectory()
        self.model_dir = Path(self.tmp.name)
        export_model(self.model, self.model_dir, version=1)
        self.encoder = OnnxEncoder.load(self.model_dir, provider=args.provider)
        self.pins = contents(64)
        image_pre = self.encoder.image_preprocessor()
        self.pixels = np.stack([image_pre.load(p.image_bytes) for p in self.pins])
        self.texts = [pin_text(p.title, p.description) for p in self.pins]
        self.ids, self.mask = self.encoder.text_preprocessor().encode(self.texts)
        self.rows: dict[str, list[dict[str, float]]] = {}

    def record(self, name: str, result: dict[str, float]) -> None:
        self.rows.setdefault(name, []).append(result)
        print(f"  {name}: {result['items_per_s']:.1f}/s", file=sys.stderr, flush=True)

    def run_head(self, head: str, pixels: np.ndarray, n: int) -> object:
        if head == "image":
            return self.encoder.encode_images(pixels[:n])
        return self.encoder.encode_pins(pixels[:n], self.ids[:n], self.mask[:n])

    def torch_head(self, head: str, n: int) -> object:
        pixels = torch.from_numpy(self.pixels[:n])
        with torch.no_grad():
            if head == "image":
                return self.model.encode_image(pixels)
            ids, mask = torch.from_numpy(self.ids[:n]), torch.from_numpy(self.mask[:n])
            return self.model(pixels, ids, mask)

    def raw(self, head: str) -> None:
        for batch in self.args.batches:
            self.record(
                f"{head} | sweep: onnxruntime direct | batch {batch}",
                time_calls(
                    lambda b=batch: self.run_head(head, self.pixels, b), batch, self.args.seconds
                ),
            )

    def limit(self, head: str, batch: int) -> dict[str, float]:
        result = time_calls(
            lambda: self.run_head(head, self.pixels, batch), batch, self.args.seconds
        )
        self.record(f"{head} | limit: onnxruntime direct | batch {batch}", result)
        return result

    def eager(self, head: str, best: int) -> None:
        for batch in sorted({1, best}):
            self.record(
                f"{head} | torch eager direct | batch {batch}",
                time_calls(lambda b=batch: self.torch_head(head, b), batch, self.args.seconds),
            )

    async def served(self, head: str, label: str, size: int, concurrency: int) -> dict[str, float]:
        batcher: MicroBatcher[int, object] = MicroBatcher(
            lambda idx: self._batch_fn(head, idx),
            max_batch=size,
            max_delay_ms=self.args.max_delay_ms,
        )
        await batcher.submit(0)  # warm-up outside the window
        before_items, before_batches = batcher.stats.items, batcher.stats.batches
        result = await closed_loop(
            lambda i: batcher.submit(i % len(self.pins)), concurrency, self.args.seconds
        )
        await batcher.close()
        batches = batcher.stats.batches - before_batches
        result["mean_batch"] = (batcher.stats.items - before_items) / max(batches, 1)
        self.record(f"{head} | MicroBatcher {label} | conc {concurrency}", result)
        return result

    def _batch_fn(self, head: str, indices: list[int]) -> list[object]:
        out = self.run_head(head, self.pixels[indices], len(indices))
        vectors = out if isinstance(out, np.ndarray) else out["pin"]
        return list(vectors)

    async def service(self, max_batch: int) -> None:
        svc = EncoderService(self.encoder, max_batch=max_batch, max_delay_ms=self.args.max_delay_ms)
        concurrency = max(self.args.concurrency)
        result = await closed_loop(
            lambda i: svc.embed(self.pins[i % len(self.pins)]), concurrency, self.args.seconds
        )
        await svc.close()
        self.record(f"pin | EncoderService (decode+tokenize) | conc {concurrency}", result)

    def best_batch(self, head: str) -> tuple[int, float]:
        rates = {
            b: median_of(self.rows[f"{head} | sweep: onnxruntime direct | batch {b}"])[
                "items_per_s"
            ]
            for b in self.args.batches
        }
        best = max(rates, key=lambda b: rates[b])
        return best, rates[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", choices=["default", "tiny", "stem", "minilm"], default="default"
    )
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--max-batch", type=int, default=0, help="0: the best raw batch size")
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--no-torch", action="store_true", help="skip torch eager rows")
    args = parser.parse_args()

    bench = Bench(args)
    # Phase 1: sweep batch sizes (interleaved repeats) to find each head's best batch.
    for _ in range(args.repeats):
        for head in HEADS:
            bench.raw(head)
    best = {head: bench.best_batch(head)[0] for head in HEADS}
    # Phase 2: per repeat and head, measure the limit and every served row back to back, so the
    # ratios compare figures taken under the same background load; report median ratios.
    top = max(args.concurrency)
    ratios: dict[str, dict[str, list[float]]] = {
        h: {
            "micro_vs_limit": [],
            "micro_vs_limit_per_cpu_s": [],
            "micro_vs_request_at_a_time": [],
            "micro_vs_request_at_a_time_per_cpu_s": [],
            "raw_batching_gain": [],
            "raw_batching_gain_per_cpu_s": [],
        }
        for h in HEADS
    }
    for _ in range(args.repeats):
        for head in HEADS:
            max_batch = args.max_batch or best[head]
            limit = bench.limit(head, best[head])
            raw1 = bench.limit(head, 1)
            if not args.no_torch:
                bench.eager(head, best[head])
            rates: dict[tuple[str, int], dict[str, float]] = {}
            for concurrency in args.concurrency:
                for label, size in (("request-at-a-time", 1), ("micro-batched", max_batch)):
                    rates[label, concurrency] = asyncio.run(
                        bench.served(head, label, size, concurrency)
                    )
            micro, single = rates["micro-batched", top], rates["request-at-a-time", top]
            rate, cpu_rate = "items_per_s", "items_per_cpu_s"
            ratios[head]["micro_vs_limit"].append(micro[rate] / limit[rate])
            ratios[head]["micro_vs_limit_per_cpu_s"].append(micro[cpu_rate] / limit[cpu_rate])
            ratios[head]["micro_vs_request_at_a_time"].append(micro[rate] / single[rate])
            ratios[head]["micro_vs_request_at_a_time_per_cpu_s"].append(
                micro[cpu_rate] / single[cpu_rate]
            )
            ratios[head]["raw_batching_gain"].append(limit[rate] / raw1[rate])
            ratios[head]["raw_batching_gain_per_cpu_s"].append(limit[cpu_rate] / raw1[cpu_rate])
        asyncio.run(bench.service(args.max_batch or best["pin"]))

    table = {name: median_of(runs) for name, runs in bench.rows.items()}
    summary: dict[str, dict[str, float]] = {
        head: {
            "limit_batch": best[head],
            "limit_items_per_s": table[f"{head} | limit: onnxruntime direct | batch {best[head]}"][
                "items_per_s"
            ],
            **{key: statistics.median(values) for key, values in ratios[head].items()},
        }
        for head in HEADS
    }
    print(f"\n{'row':60} {'items/s':>8} {'/cpu-s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for name, row in table.items():
        batch = f"{row['mean_batch']:.1f}" if "mean_batch" in row else ""
        rate, cpu_rate = row["items_per_s"], row["items_per_cpu_s"]
        p50, p99 = row["p50_ms"], row["p99_ms"]
        print(f"{name:60} {rate:8.1f} {cpu_rate:8.1f} {p50:8.1f} {p99:8.1f} {batch:>6}")
    print()
    for head, s in summary.items():
        print(
            f"{head}: limit {s['limit_items_per_s']:.1f}/s at batch {s['limit_batch']:.0f}; "
            f"micro-batcher@{top} = {s['micro_vs_limit']:.0%} of limit "
            f"({s['micro_vs_limit_per_cpu_s']:.0%} per CPU-second), "
            f"{s['micro_vs_request_at_a_time']:.2f}x request-at-a-time "
            f"({s['micro_vs_request_at_a_time_per_cpu_s']:.2f}x per CPU-second); "
            f"raw batching gain {s['raw_batching_gain']:.2f}x "
            f"({s['raw_batching_gain_per_cpu_s']:.2f}x per CPU-second)"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "created_at": stamp,
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "providers": bench.encoder.providers,
        "args": vars(args),
        "config": bench.model.config.to_dict(),
        "rows": table,
        "runs": bench.rows,
        "summary": summary,
    }
    path = RESULTS / f"encoder-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path.relative_to(RESULTS.parent.parent)}")
    bench.tmp.cleanup()


if __name__ == "__main__":
    main()
