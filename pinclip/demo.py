"""`pinclip demo`: the whole product on one machine, from nothing to similar-pin results.

1. starts Kafka and Neo4j (`pinclip services`), Milvus runs embedded (milvus-lite);
2. generates a synthetic Pin–Board dataset with real rendered images;
3. trains a small PinCLIP model with neighbor alignment (cached in the demo registry as v1), on
   the pins of the graph *minus* a held-out set that stands for tomorrow's brand-new pins;
4. runs the Faust worker and streams every pin as a NewPin event (and the extra saves as Repins,
   plus a few malformed events), showing events/s, freshness p50/p99 and dead letters live;
5. prints a few brand-new pins with their most similar pins — found from content alone.

Everything lives under `<state_dir>/demo`; a second run reuses the dataset and the model.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from pinclip.settings import Settings

console = Console()


@dataclass(frozen=True)
class DemoOptions:
    pins: int = 1200
    boards: int = 120
    # The recommended preset (trainer.config.TrainConfig.preset): frozen MiniLM with its outputs
    # cached per pin, the hybrid ViT on the pretrained MobileNetV2 stem (its output cached per
    # image), residual heads. None = the preset's step count.
    model: str = "stem"
    train_steps: int | None = None
    heldout_fraction: float = 0.1
    rate: float = 100.0  # events produced per second (pins, repins and a few malformed ones)
    examples: int = 3
    keep_services: bool = False
    seed: int = 0
    gallery: bool = True  # end by serving the API and gallery; False: terminal only (CI)


def _step(text: str) -> None:
    console.rule(f"[bold cyan]{text}")


def start_services() -> list[Any]:
    """Start Kafka and Neo4j unless already running; returns the ones this call started."""
    from pinclip.services import manager
    from pinclip.services.config import ServicesConfig

    services = manager.build_services(ServicesConfig.model_validate({}), ["kafka", "neo4j"])
    # A service that already answers on its address (ours or the user's own) is used as it is.
    missing = [s for s in services if not s.probe()]
    for service in services:
        if service not in missing:
            console.print(f"  {service.name}: answering at {service.address()}, using it")
    manager.up(missing, lambda message: console.print(f"  {message}"))
    return missing


def stop_services(started: list[Any]) -> None:
    from pinclip.services import manager

    if started:
        manager.down(started, lambda message: console.print(f"  {message}"))


def ensure_dataset(root: Path, opts: DemoOptions) -> Path:
    from trainer.generator import GeneratorConfig, generate

    data_dir = root / "data"
    if not (data_dir / "dataset.json").exists():
        cfg = GeneratorConfig(num_pins=opts.pins, num_boards=opts.boards, seed=opts.seed)
        generate(data_dir, cfg)
        console.print(f"  generated {opts.pins} pins on {opts.boards} boards in {data_dir}")
    else:
        console.print(f"  reusing the dataset in {data_dir}")
    return data_dir


def ensure_model(root: Path, data_dir: Path, opts: DemoOptions) -> int:
    """Train once and register v1; later runs reuse it."""
    from pinclip.factory import Factory, StoreConfig

    registry = Factory(StoreConfig(registry_url=str(root / "registry"))).registry()
    latest = registry.latest()
    if latest is not None:
        console.print(f"  reusing model v{latest} from the demo registry")
        return latest

    from encoder.model import PinClipModel
    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import evaluate, format_table

    cfg = TrainConfig.preset(
        opts.model,
        data=str(data_dir),
        out_dir=str(root / "train"),
        steps=opts.train_steps,
        feature_cache=str(root / "features"),
        heldout_fraction=opts.heldout_fraction,
        split_seed=opts.seed,
        seed=opts.seed,
    )
    from trainer.loop import train

    result = train(cfg)
    console.print(f"  trained {result.steps} steps at {result.samples_per_s:.0f} samples/s")
    report = evaluate(read_dataset(data_dir), result.model_dir, opts.heldout_fraction, opts.seed)
    console.print("  cold start, model (pin head and each head alone) beside the free baselines:")
    console.print(format_table(report))
    version, _ = registry.register_model(PinClipModel.load(result.model_dir), eval_report=report)
    registry.set_live(version)
    console.print(f"  registered model v{version}")
    return version


def _progress_table(
    produced: int, total: int, progress: Any, started: float, since: int = 0
) -> Table:
    summary = {**progress.summary(), **progress.quantiles_ms(since)}
    elapsed = max(time.monotonic() - started, 1e-9)
    table = Table(title="streaming", show_header=True)
    for col in ("produced", "embedded", "embedded/s", "freshness p50", "freshness p99", "DLQ"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{produced}/{total}",
        str(summary["embedded"]),
        f"{summary['embedded'] / elapsed:.0f}",
        f"{summary['p50']:.0f} ms",
        f"{summary['p99']:.0f} ms",
        str(summary["dead_letters"]),
    )
    return table


def _events(data_dir: Path, run_tag: str) -> tuple[list[Any], list[Any], list[bytes]]:
    """NewPin per pin (first board), Repin per extra save, and malformed records for the DLQ."""
    from streams.events import NewPin, Repin
    from trainer.dataset import read_dataset

    dataset = read_dataset(data_dir)
    first_save: dict[str, Any] = {}
    repins: list[Any] = []
    for save in dataset.saves:
        if save.pin_id not in first_save:
            first_save[save.pin_id] = save
        else:
            repins.append(save)
    pins = []
    for pin in dataset.pins:
        first = first_save.get(pin.pin_id)
        if first is None:
            continue
        image = dataset.image_url(pin)
        pins.append(
            NewPin(
                pin_id=pin.pin_id,
                board_id=first.board_id,
                user_id=first.user_id or "demo-user",
                title=pin.title,
                description=pin.description,
                image_uri=image if "://" in image else Path(image).resolve().as_uri(),
                image_b64=None,
                created_at=datetime.now(UTC),
            )
        )
    repin_events = [
        Repin(
            pin_id=s.pin_id,
            board_id=s.board_id,
            user_id=s.user_id or "demo-user",
            ts=datetime.now(UTC),
        )
        for s in repins
    ]
    bad = [
        b'{"pin_id": "demo-broken',  # not JSON
        json.dumps({"schema_version": 1, "pin_id": f"{run_tag}-no-title"}).encode(),
        json.dumps(
            {
                "schema_version": 1,
                "pin_id": f"{run_tag}-missing-image",
                "board_id": "b-demo",
                "user_id": "demo-user",
                "title": "a pin whose image is gone",
                "description": "",
                "image_uri": (data_dir / "no-such-image.png").resolve().as_uri(),
                "created_at": datetime.now(UTC).isoformat(),
            }
        ).encode(),
    ]
    return pins, repin_events, bad


def interleave(pins: list[Any], repins: list[Any], bad: list[bytes]) -> list[tuple[str, Any]]:
    """A plausible event order: each repin a little after its pin, malformed records early."""
    position = {p.pin_id: i for i, p in enumerate(pins)}
    later: dict[int, list[Any]] = {}
    for repin in repins:
        later.setdefault(position.get(repin.pin_id, 0) + 25, []).append(repin)
    stream: list[tuple[str, Any]] = []
    for i, pin in enumerate(pins):
        stream.append(("pin", pin))
        stream.extend(("repin", r) for r in later.pop(i, []))
        if i % 20 == 10 and i // 20 < len(bad):
            stream.append(("bad", bad[i // 20]))
    stream.extend(("repin", r) for rs in later.values() for r in rs)
    return stream


def wait_until_ready(worker: Any, timeout_s: float = 120.0) -> None:
    """Produce only once the worker has its model and stores, so freshness is not startup time."""
    deadline = time.monotonic() + timeout_s
    with console.status("starting the worker (model, Milvus, Neo4j, Kafka group)…"):
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(f"the worker exited; see {worker.log_path}")
            if worker.log_path.exists() and "worker_ready" in worker.log_path.read_text():
                time.sleep(2.0)  # the consumer group assigns partitions right after
                return
            time.sleep(0.2)
    raise RuntimeError(f"the worker was not ready after {timeout_s:.0f}s; see {worker.log_path}")


def stream_pins(root: Path, data_dir: Path, settings: Settings, opts: DemoOptions) -> Any:
    from streams.config import Topics, WorkerConfig
    from streams.content import FetchPolicy
    from streams.producer import EventProducer
    from streams.runner import StreamProgress, WorkerProcess

    run_tag = "demo" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    milvus_path = root / "milvus.db"
    shutil.rmtree(milvus_path, ignore_errors=True)  # each run streams into a fresh index
    config = WorkerConfig.from_settings(
        settings,
        topics=Topics.with_prefix(run_tag),
        consumer_group=run_tag,
        milvus_uri=str(milvus_path),
        registry_url=str(root / "registry"),
        state_dir=root / "worker",
        fetch=FetchPolicy.from_settings(settings).with_roots(str(data_dir.resolve())),
    )
    pins, repins, bad = _events(data_dir, run_tag)
    random.Random(opts.seed).shuffle(pins)
    total = len(pins) + len(repins) + len(bad)
    produced = 0
    with (
        EventProducer(config.kafka_bootstrap, config.topics) as producer,
        StreamProgress(config) as progress,
        WorkerProcess(config) as worker,
    ):
        wait_until_ready(worker)
        # One pin first, unpaced: the consumer group's first assignment and the first batch's
        # one-off costs (sessions, collection load) are start-up, not freshness.
        first = pins[0].model_copy(update={"created_at": datetime.now(UTC)})
        producer.send(first)
        producer.flush()
        with console.status("waiting for the first pin to be searchable…"):
            if not progress.wait_until(lambda p: first.pin_id in p.embedded, timeout_s=120):
                raise RuntimeError(f"the first pin was not embedded; see {worker.log_path}")
        warmup = len(progress.latencies_ms)
        produced = 1
        started = time.monotonic()
        with Live(console=console, refresh_per_second=4) as live:
            stream = interleave(pins[1:], repins, bad)
            for kind, item in stream:
                if kind == "bad":
                    producer.send_raw(config.topics.created, item)
                else:
                    if kind == "pin":
                        item = item.model_copy(update={"created_at": datetime.now(UTC)})
                    producer.send(item)
                produced += 1
                target = started + produced / opts.rate
                while time.monotonic() < target:
                    progress.poll(timeout_s=max(0.0, min(0.05, target - time.monotonic())))
                    if not worker.alive():
                        raise RuntimeError(f"the worker exited; see {worker.log_path}")
                live.update(_progress_table(produced, total, progress, started, warmup))
            producer.flush()
            done = progress.wait_until(
                lambda p: len(p.embedded) >= len(pins) and len(p.dead) >= len(bad),
                timeout_s=180,
                on_tick=lambda p: live.update(_progress_table(produced, total, p, started, warmup)),
            )
        if not done:
            raise RuntimeError(f"not every pin was embedded in time; see {worker.log_path}")
        summary = {**progress.summary(), **progress.quantiles_ms(warmup)}
        summary["dead_letters_detail"] = [(d.stage, d.reason) for d in progress.dead]
    return config, summary


def show_similar(config: Any, data_dir: Path, opts: DemoOptions) -> None:
    """Brand-new pins (held out of training, no edges then) and their nearest pins."""
    from pinclip.factory import Factory
    from trainer.dataset import read_dataset
    from trainer.split import cold_start_split

    dataset = read_dataset(data_dir)
    split = cold_start_split(dataset, opts.heldout_fraction, opts.seed)
    by_id = {p.pin_id: p for p in dataset.pins}
    boards = dataset.boards_of()
    factory = Factory.from_worker_config(config)
    store = factory.vector_store(factory.registry_dim(1))
    try:
        store.ensure_version(store.live_version() or 1)  # reopened lite collections start released
        for pin_id in split.heldout_pin_ids[: opts.examples]:
            pin = by_id[pin_id]
            where = ", ".join(sorted(boards[pin_id]))
            table = Table(title=f"new pin {pin_id}: “{pin.title}” (boards: {where})")
            table.add_column("similar pin")
            table.add_column("score", justify="right")
            table.add_column("title")
            table.add_column("shares a board", justify="center")
            for hit in store.search_by_pin(pin_id, k=5):
                other = by_id.get(hit.pin_id)
                shared = bool(boards.get(hit.pin_id, set()) & boards[pin_id])
                table.add_row(
                    hit.pin_id,
                    f"{hit.score:.3f}",
                    other.title if other else "?",
                    "yes" if shared else "",
                )
            console.print(table)
    finally:
        store.close()


def run_demo(settings: Settings, opts: DemoOptions) -> None:
    root = settings.state_dir / "demo"
    root.mkdir(parents=True, exist_ok=True)
    _step("1/5 services: Kafka (KRaft) and Neo4j; Milvus embedded")
    started = start_services()
    try:
        _step("2/5 dataset: synthetic pins, boards and rendered images")
        data_dir = ensure_dataset(root, opts)
        _step("3/5 model: PinCLIP with neighbor alignment, exported to ONNX")
        ensure_model(root, data_dir, opts)
        _step("4/5 stream: new pins and repins through the Faust worker")
        config, summary = stream_pins(root, data_dir, settings, opts)
        console.print(
            f"  embedded {summary['embedded']} pins; freshness p50 {summary['p50']:.0f} ms, "
            f"p99 {summary['p99']:.0f} ms (Milvus consistency {config.milvus_consistency}); "
            f"dead letters: {summary['dlq_by_reason']}"
        )
        _step("5/5 similar pins for brand-new pins (content only, no edges at training time)")
        show_similar(config, data_dir, opts)
        if opts.gallery:
            from pinclip.api.serve import serve_gallery_until_interrupted

            serve_gallery_until_interrupted(settings, config)
    finally:
        if not opts.keep_services:
            stop_services(started)
