"""The load side of the freshness benchmark: the model, the images, the raw pin-head limit, and
a consumer under load (pins produced at a fixed rate, measured from its PinEmbedded events)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench.streambench import procstat, report
from bench.streambench.consumers import Consumer, scrape
from streams.config import Topics, WorkerConfig
from streams.content import BlockingFetcher, FetchPolicy
from streams.events import NewPin
from streams.producer import EventProducer
from streams.runner import StreamProgress
from streams.synthetic import THEMES, draw_image


def export(config_name: str, registry: Path) -> int:
    import torch

    from encoder.config import PinClipConfig
    from encoder.export import export_model
    from encoder.model import PinClipModel

    torch.manual_seed(0)
    cfg = PinClipConfig.tiny() if config_name == "tiny" else PinClipConfig.default()
    return int(export_model(PinClipModel(cfg), registry / "v1", 1).dim)


def image_pool(directory: Path, n: int = 64) -> list[str]:
    """Real JPEG/PNG files made once, reused by many pins (the producer must not eat the CPU)."""

    rng = random.Random(0)
    directory.mkdir(parents=True, exist_ok=True)
    uris = []
    for i in range(n):
        fmt = "JPEG" if i % 2 else "PNG"
        path = directory / f"img{i}.{fmt.lower()}"
        path.write_bytes(draw_image(rng.choice(list(THEMES)), rng, size=256, fmt=fmt))
        uris.append(path.resolve().as_uri())
    return uris


def raw_pin_limit(model_dir: Path, images: list[str], seconds: float) -> dict[str, float]:
    """Pins/s of onnxruntime's pin head on pre-decoded inputs, and its CPU ms per pin: the best
    over batch sizes and over onnxruntime's default threads (one per core) and one thread."""
    from encoder.runtime import OnnxEncoder

    best = {"batch": 0.0, "threads": 0.0, "pins_per_s": 0.0, "cpu_ms_per_pin": 0.0}
    for threads in (0, 1):
        encoder = OnnxEncoder.load(model_dir, provider="auto", intra_op_threads=threads)
        pre, tok = encoder.image_preprocessor(), encoder.text_preprocessor()
        with BlockingFetcher(image_policy(images)) as fetch:
            pixels = [pre.load(fetch(u)) for u in images]
        for batch in (8, 16, 32, 64):
            px = np.stack([pixels[i % len(pixels)] for i in range(batch)])
            ids, mask = tok.encode(["Wave beach ideas. A ocean pin about wave and beach."] * batch)
            encoder.encode_pins(px, ids, mask)  # warm-up
            done, start, cpu0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds:
                encoder.encode_pins(px, ids, mask)
                done += batch
            rate = done / (time.perf_counter() - start)
            if rate > best["pins_per_s"]:
                cpu_ms = round(1000.0 * (time.process_time() - cpu0) / done, 3)
                best = {
                    "batch": float(batch),
                    "threads": float(threads),
                    "pins_per_s": rate,
                    "cpu_ms_per_pin": cpu_ms,
                }
    return best


def image_policy(images: list[str]) -> FetchPolicy:
    """The fetch policy of the benchmark: file:// reads allowed under the image pool only."""
    return FetchPolicy(file_roots=tuple({str(Path(urlsplit(u).path).parent) for u in images}))


def lag_slope(samples: list[tuple[float, int]]) -> float:
    """Events/s by which the backlog grew over the second half of the window."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return 0.0
    t = np.array([s[0] for s in half])
    lag = np.array([s[1] for s in half], dtype=float)
    return float(np.polyfit(t - t[0], lag, 1)[0])


class Run:
    """One consumer under load: produces pins at a rate and measures what comes back."""

    def __init__(
        self,
        consumer: Consumer,
        topics: Topics,
        args: Any,
        images: list[str],
        tag: str,
        meter: procstat.CpuMeter,
        probe: Callable[[list[str]], int] | None,
    ):
        self.consumer, self.args, self.images, self.tag = consumer, args, images, tag
        self.topics, self.meter, self.probe = topics, meter, probe
        self.counter = 0
        self.template = NewPin(
            pin_id=f"{tag}-p",
            board_id=f"{tag}-b",
            user_id=f"{tag}-u",
            title="Wave beach ideas",
            description="A ocean pin about wave and beach.",
            image_uri=images[0],
            created_at=datetime.now(UTC),
        )

    def pin(self) -> NewPin:
        """A validated template, copied with this pin's fields (the producer stays cheap)."""
        i, self.counter = self.counter, self.counter + 1
        return self.template.model_copy(
            update={
                "pin_id": f"{self.tag}-p{i}",
                "board_id": f"{self.tag}-b{i % 50}",
                "user_id": f"{self.tag}-u{i % 20}",
                "image_uri": self.images[i % len(self.images)],
                "created_at": datetime.now(UTC),
            }
        )

    def rate(
        self, rate: float, seconds: float, producer: EventProducer, progress: StreamProgress
    ) -> dict[str, Any]:
        start_index = len(progress.latencies_ms)
        sent_ids: list[str] = []
        samples: list[tuple[float, int]] = []
        cpu0 = self.meter.snapshot()
        metrics0 = scrape(self.consumer.metrics_port) if self.consumer.metrics_port else {}
        t0 = time.monotonic()
        next_sample = t0
        while (now := time.monotonic()) - t0 < seconds:
            for _ in range(int((now - t0) * rate) - len(sent_ids)):
                pin = self.pin()
                producer.send(pin)
                sent_ids.append(pin.pin_id)
            progress.poll(0.01)
            if now >= next_sample:
                done = sum(1 for i in sent_ids if i in progress.embedded)
                samples.append((now - t0, len(sent_ids) - done))
                next_sample += 0.5
            if not self.consumer.alive():
                raise RuntimeError(f"{self.consumer.name} exited")
        producer.flush()
        window_end = time.monotonic()
        progress.wait_until(lambda p: all(i in p.embedded for i in sent_ids), 90.0)
        drain_s = time.monotonic() - window_end
        cpu = self.meter.snapshot().minus(cpu0)
        metrics1 = scrape(self.consumer.metrics_port) if self.consumer.metrics_port else {}
        latencies = progress.latencies_ms[start_index:]
        embedded = sum(1 for i in sent_ids if i in progress.embedded)
        slope = lag_slope(samples)
        per_pin = 1000.0 / max(embedded, 1)
        row: dict[str, Any] = {
            "rate": round(rate, 1),
            "sent": len(sent_ids),
            "embedded": embedded,
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
            "lag_slope_per_s": round(slope, 2),
            "drain_s": round(drain_s, 2),
            # Kept up: everything arrived, drained soon after, and the backlog did not grow (a
            # slope measured over a few in-flight pins is noisy: a sub-second drain also counts).
            "sustained": embedded == len(sent_ids)
            and drain_s < 5.0
            and (slope <= 0.05 * rate or drain_s <= 0.5),
            "cpu_ms_per_pin": round(cpu.values.get("consumer", 0.0) * per_pin, 2),
            "machine_ms_per_pin": round(cpu.values.get("machine", 0.0) * per_pin, 2),
        }
        if self.probe is not None:
            row["probe_visible"] = f"{self.probe(sent_ids[-20:])}/{min(20, len(sent_ids))}"
        window = {
            "stages": report.stage_deltas(metrics0, metrics1),
            "threads": cpu.threads,
            "processes": {k: v for k, v in cpu.values.items()},
        }
        row["profile"] = report.profile(window, embedded)
        return row


def measure(
    run: Run, config_topics: Topics, kafka: str, rates: list[float], seconds: float
) -> list[dict[str, Any]]:
    """Rising rates until two in a row are not sustained."""
    rows: list[dict[str, Any]] = []
    progress_config = WorkerConfig(kafka_bootstrap=kafka, topics=config_topics)
    producer = EventProducer(kafka, config_topics, linger_ms=2)
    try:
        with StreamProgress(progress_config) as progress:
            run.consumer.start()
            warm = run.rate(20.0, 3.0, producer, progress)
            print(f"  warm-up: {warm['embedded']}/{warm['sent']} embedded", flush=True)
            misses = 0
            for rate in rates:
                row = run.rate(rate, seconds, producer, progress)
                rows.append(row)
                printable = {k: v for k, v in row.items() if k != "profile"}
                print(f"  {json.dumps(printable)}", flush=True)
                misses = 0 if row["sustained"] else misses + 1
                if misses >= 2:
                    break
    finally:
        producer.close()
        run.consumer.stop()
    return rows
