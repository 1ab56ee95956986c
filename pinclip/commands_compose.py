"""`pinclip bootstrap`, `pinclip wait-graph`, `pinclip stream-sample`: the steps a deployment
needs around the worker, used by compose/dev.yml.

- bootstrap: a fresh stack has no model; train a small one on a generated dataset and register
  it as v1 (a no-op once the registry has a version).
- wait-graph: retraining on a graph too small to fill a batch fails; wait until it is not.
- stream-sample: produce a dataset's pins with inline images, so a new stack shows similar pins.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import typer

from pinclip.settings import get_settings

if TYPE_CHECKING:
    from pinclip.registry import ModelRegistry

app = typer.Typer(add_completion=False)
log = structlog.get_logger("pinclip.compose")


@app.command()
def bootstrap(
    pins: int = typer.Option(1200, help="Pins in the generated seed dataset."),
    boards: int = typer.Option(120, help="Boards in the generated seed dataset."),
    model: str = typer.Option(
        "stem", help="Trainer preset: stem (recommended), minilm (fast), small, tiny."
    ),
    steps: int | None = typer.Option(
        None, help="Training steps of the first model (the preset's)."
    ),
    seed: int = typer.Option(0, help="Seed of the generated dataset and of training."),
) -> None:
    """Register model v1 (trained on a generated dataset, kept at STATE_DIR/seed) when the
    registry is empty; do nothing when it already has a version."""
    from pinclip.factory import Factory

    settings = get_settings()
    registry = Factory.from_settings(settings).registry()
    latest = registry.latest()
    if latest is not None:
        typer.echo(f"registry {settings.registry_url} has v{latest}: nothing to bootstrap")
        return
    data = settings.state_dir / "seed"
    if not (data / "dataset.json").exists():
        from trainer.generator import GeneratorConfig, generate

        generate(data, GeneratorConfig(num_pins=pins, num_boards=boards, seed=seed))
        typer.echo(f"generated {pins} pins on {boards} boards in {data}")
    version = _train_and_register(
        registry, data, settings.state_dir / "seed-run", model, steps, seed
    )
    typer.echo(f"registered v{version} in {settings.registry_url} (live)")


def _train_and_register(
    registry: ModelRegistry, data: Path, run_dir: Path, model: str, steps: int | None, seed: int
) -> int:
    from encoder.model import PinClipModel
    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import evaluate
    from trainer.loop import train

    cfg = TrainConfig.preset(
        model,
        data=str(data),
        out_dir=str(run_dir),
        steps=steps,
        seed=seed,
        split_seed=seed,
        feature_cache=str(run_dir.parent / "features"),
    )
    cfg.progress = False
    result = train(cfg)
    report = evaluate(
        read_dataset(data), result.model_dir, cfg.heldout_fraction, seed, baselines=()
    )
    version, _ = registry.register_model(PinClipModel.load(result.model_dir), eval_report=report)
    registry.set_live(version)
    return int(version)


@app.command("wait-graph")
def wait_graph(
    min_pins: int = typer.Option(
        256,
        help="Pins the graph must hold (a training round needs "
        "enough to fill its batches after the held-out split).",
    ),
    poll_s: float = typer.Option(30.0, help="Seconds between checks."),
    timeout_s: float = typer.Option(0.0, help="Give up after this long (0: wait forever)."),
) -> None:
    """Wait until Neo4j holds at least MIN_PINS pins, then exit 0 (exit 1 on timeout)."""
    from pinclip.factory import Factory

    settings = get_settings()
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    while True:
        count = -1
        try:
            with Factory.from_settings(settings).graph_store() as graph:
                count = graph.count_pins()
        except Exception as exc:  # Neo4j still starting or briefly away: keep waiting
            log.warning("wait_graph.unavailable", error=str(exc))
        if count >= min_pins:
            typer.echo(f"the graph holds {count} pins (>= {min_pins})")
            return
        log.info("wait_graph.waiting", pins=count, min_pins=min_pins, next_check_s=poll_s)
        if deadline is not None and time.monotonic() > deadline:
            typer.echo(f"timed out: the graph holds {count} pins (< {min_pins})", err=True)
            raise typer.Exit(1)
        time.sleep(poll_s)


@app.command("stream-sample")
def stream_sample(
    data: Path | None = typer.Option(None, help="Dataset directory (default: STATE_DIR/seed)."),
    pins: int = typer.Option(300, help="How many of its pins to produce (0: all)."),
    rate: float = typer.Option(50.0, help="Events per second."),
    api_url: str = typer.Option("http://127.0.0.1:8080", help="Where users reach the API."),
    examples: int = typer.Option(3, help="How many 'similar pins' links to print."),
) -> None:
    """Produce a dataset's pins as new-pin events with inline images, plus their repins."""
    from pinclip.dataset_events import Skipped, dataset_events, plan_dataset
    from streams.config import WorkerConfig
    from streams.producer import EventProducer
    from trainer.dataset import read_dataset

    settings = get_settings()
    dataset = read_dataset(data or settings.state_dir / "seed")
    plan = plan_dataset(dataset, pins if pins > 0 else None)
    events = [e for e in dataset_events(dataset, plan) if not isinstance(e, Skipped)]
    config = WorkerConfig.from_settings(settings)
    with EventProducer(config.kafka_bootstrap, config.topics) as producer:
        started = time.monotonic()
        for sent, event in enumerate(events, start=1):
            producer.send(event)
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush()
    typer.echo(f"produced {len(events)} events ({len(plan.pins)} pins) to {config.topics.created}")
    for pin in plan.pins[:examples]:
        typer.echo(
            f"similar pins for {pin.pin_id} ({pin.title!r}): {api_url}/pins/{pin.pin_id}/similar"
        )


def register(root: typer.Typer) -> None:
    """Add the commands at the top level of `pinclip`."""
    root.registered_commands.extend(app.registered_commands)
