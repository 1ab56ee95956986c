"""`pinclip generate-data | export-data | train | eval | publish | backfill | retrain`.

torch, transformers and the stores are imported inside each command, so registering these
commands costs nothing to `pinclip services`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pinclip.settings import Settings, get_settings

app = typer.Typer(add_completion=False)


def _graph(settings: Settings) -> Any:
    from pinclip.factory import Factory

    return Factory.from_settings(settings).graph_store()


def _vectors(settings: Settings, dim: int) -> Any:
    from pinclip.factory import Factory

    return Factory.from_settings(settings).vector_store(dim)


def _publisher(settings: Settings) -> Any:
    from pinclip.registry import send_model_update

    return lambda update: send_model_update(
        settings.kafka_bootstrap, settings.topic_model_updates, update
    )


@app.command("generate-data")
def generate_data(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    pins: int = typer.Option(3000, min=1, help="Pins to generate."),
    boards: int = typer.Option(300, min=1, help="Boards the pins are saved to (Zipf sizes)."),
    topics: int = typer.Option(12, min=1, help="Latent topics (shape + hue, topic words)."),
    communities: int = typer.Option(
        4, min=1, help="Groups of topics boards mix: the signal only the graph carries."
    ),
    image_size: int = typer.Option(64, min=8, help="Side of the square PNG images (pixels)."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same dataset."),
) -> None:
    """Write a synthetic Pin–Board dataset (images, pins.jsonl, saves.jsonl, dataset.json).

    The format is the one any dataset must have (docs/trainer.md); images are PNG files under
    OUT/images, referenced by relative paths.

    Example: pinclip generate-data --out var/data --pins 2000
    """
    from trainer.generator import GeneratorConfig, generate

    cfg = GeneratorConfig(
        num_pins=pins,
        num_boards=boards,
        num_topics=topics,
        num_communities=communities,
        image_size=image_size,
        seed=seed,
    )
    latents, _ = generate(out, cfg)
    typer.echo(f"wrote {len(latents)} pins to {out}")


@app.command("export-data")
def export_data(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    id_prefix: str = typer.Option("", help="Only pins whose id starts with this."),
) -> None:
    """Export the live Neo4j graph to the offline dataset format."""
    from trainer.export_graph import export_graph

    with _graph(get_settings()) as graph:
        n_pins, n_saves = export_graph(graph, out, id_prefix=id_prefix)
    typer.echo(f"exported {n_pins} pins and {n_saves} saves to {out}")


@app.command("train")
def train_cmd(
    data: Annotated[str, typer.Option(help="Dataset directory or fsspec URL.")],
    out: Annotated[Path, typer.Option(help="Run directory (checkpoint, model/, train.json).")],
    model: str = typer.Option(
        "minilm", help="Preset: minilm (recommended), small, tiny (tests), default."
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Optimizer steps, one batch each (preset: 600 for minilm)."
    ),
    batch_size: int | None = typer.Option(
        None, min=2, help="Pins per batch, in-batch negatives (preset: 64 for minilm)."
    ),
    lr: float | None = typer.Option(
        None, help="Peak learning rate, warmup then cosine (preset: 1e-3 for minilm)."
    ),
    neighbor_weight: float = typer.Option(1.0, help="0 = ablation without neighbor alignment."),
    sampler: str = typer.Option("coboard", help="Neighbor sampler: coboard or walk."),
    heldout: float = typer.Option(
        0.1, help="Fraction of saved pins held out (with all their saves) for `pinclip eval`."
    ),
    split_seed: int = typer.Option(0, help="Seed of the held-out split."),
    seed: int = typer.Option(0, help="Seed of initialisation, batch order and sampling."),
    workers: int = typer.Option(
        1, min=0, help="DataLoader worker processes (live path only: text tower trained)."
    ),
    threads: int = typer.Option(0, help="torch CPU threads; 0 = the cores not busy now."),
    vision_checkpoint: Path | None = typer.Option(
        None, help="Local Hugging Face vision checkpoint (ViT, DINOv2, ConvNeXt...) as tower."
    ),
    feature_cache: Path | None = typer.Option(
        None, help="Per-dataset image/text feature cache (default: `STATE_DIR/features`)."
    ),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint when it exists."),
    config: Path | None = typer.Option(None, help="TrainConfig JSON; flags above are ignored."),
) -> None:
    """Train with multi-granular + neighbor alignment; resumes from OUT/checkpoint.

    Writes OUT/model (the trained encoder), OUT/train.json (loss history) and
    OUT/train_config.json (kept in the registry by `pinclip publish`, reused by retrain).

    Example: pinclip train --data var/data --out var/run --model minilm --steps 300
    """
    from trainer.config import TrainConfig
    from trainer.loop import train

    if config is not None:
        cfg = TrainConfig.load(config)
        cfg.data, cfg.out_dir = data, str(out)
    else:
        cfg = TrainConfig.preset(
            model,
            data=data,
            out_dir=str(out),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            neighbor_sampler=sampler,
            heldout_fraction=heldout,
            split_seed=split_seed,
            seed=seed,
            num_workers=workers,
            threads=threads,
            vision_checkpoint=str(vision_checkpoint) if vision_checkpoint else None,
            feature_cache=str(feature_cache or get_settings().state_dir / "features"),
        )
        cfg.weights.neighbor = neighbor_weight
    result = train(cfg, resume=resume)
    typer.echo(f"model: {result.model_dir} ({result.steps} steps, {result.samples_per_s:.0f}/s)")


@app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Option(help="Run directory written by `pinclip train`.")],
    data: str | None = typer.Option(None, help="Dataset (default: the one it was trained on)."),
    ablation: Path | None = typer.Option(None, help="Run trained with --neighbor-weight 0."),
    minilm: bool = typer.Option(True, help="Include the frozen MiniLM text baseline."),
) -> None:
    """Cold-start Recall@1/10/50, MRR and text→pin Recall@10 with baselines; writes eval.json.

    Each held-out pin (removed from training with all its saves, like a brand-new pin) queries
    the training pins by content alone; the relevant pins are those sharing a board with it.
    recall@K = |relevant in top K| / min(K, |relevant|), averaged over queries — so 1.0 is
    reachable, and recall@1 can exceed recall@10 (a pin with 5 relevant pins and one at rank 1
    scores 1.0 at K=1 but 2/5 at K=10 if only 2 of them are in its top 10).

    Example: pinclip eval --run var/run
    """
    from rich.console import Console
    from rich.table import Table

    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import evaluate, write_report
    from trainer.loop import MODEL_DIR

    cfg = TrainConfig.load(run / "train_config.json")
    dataset = read_dataset(data or cfg.data)
    report = evaluate(
        dataset,
        run / MODEL_DIR,
        cfg.heldout_fraction,
        cfg.split_seed,
        ablation_dir=None if ablation is None else ablation / MODEL_DIR,
        baselines=("random", "colour_histogram", "minilm_text")
        if minilm
        else ("random", "colour_histogram"),
    )
    path = write_report(report, run / MODEL_DIR)
    cols = ["recall@1", "recall@10", "recall@50", "mrr", "text_to_pin@10"]
    table = Table(title=f"cold start: {report['split']['queries']} new pins")
    table.add_column("system")
    for col in cols:
        table.add_column(col, justify="right")
    for name, row in report["rows"].items():
        table.add_row(name, *(f"{row[c]:.4f}" if c in row else "n/a" for c in cols))
    table.caption = EVAL_CAPTION
    Console().print(table)
    typer.echo(f"wrote {path}")


EVAL_CAPTION = (
    "recall@K = |relevant in top K| / min(K, |relevant|), relevant = training pins that share a "
    "board with the new pin; the denominator grows with K, so recall@1 can exceed recall@10. "
    "mrr: 1 / rank of the first relevant pin. text_to_pin@10: the pin's own text finds it."
)


class Stage(StrEnum):
    candidate = "candidate"
    promoted = "promoted"


@app.command("publish")
def publish_cmd(
    run: Path | None = typer.Option(
        None, help="Run directory of `pinclip train`: register its model as the next version."
    ),
    version: int | None = typer.Option(
        None,
        min=1,
        help="With --run: register as this number (default: newest + 1). Alone: announce this "
        "registered version again.",
    ),
    stage: Stage = typer.Option(
        Stage.candidate,
        help="candidate: workers load it beside the live model and write new pins to both; "
        "promoted: workers serve it alone (sent by `pinclip backfill` once it moved the alias).",
    ),
    send: bool = typer.Option(True, help="Send the ModelUpdate to Kafka (model.updates)."),
) -> None:
    """Register a trained model as registry version vN and announce it to the workers.

    The version holds the ONNX encoder, its manifest, eval.json and the training configuration
    (which `pinclip retrain` starts from). Registering the same run twice is refused.

    Example: pinclip publish --run var/run      (a later model: then pinclip backfill --version N)
    """
    from pinclip.errors import UserError
    from pinclip.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.registry_url)
    if run is not None:
        version = _register_run(registry, run, version)
        typer.echo(f"registered v{version} at {registry.version_url(version)}")
    elif version is not None:
        registry.require(version)
    else:
        raise UserError("give --run DIR (register a trained model) or --version N (announce one)")
    if stage is Stage.promoted and _live_version(settings, registry) != version:
        raise UserError(
            f"v{version} is not live: `pinclip backfill --version {version}` fills its "
            "collection, moves the alias and then announces the promotion"
        )
    if send:
        _publisher(settings)(registry.model_update(version, stage.value))
        typer.echo(
            f"sent ModelUpdate v{version} stage={stage.value} to {settings.topic_model_updates}"
        )


def _register_run(registry: Any, run: Path, version: int | None) -> int:
    """Checks first (a model there, not registered yet, a free number), then registers."""
    from pinclip.errors import UserError
    from pinclip.registry import weights_sha256
    from trainer.evaluate import EVAL_FILE
    from trainer.loop import MODEL_DIR

    model_dir = run / MODEL_DIR
    if not (model_dir / "config.json").is_file():
        raise UserError(
            f"{run} holds no trained model ({model_dir} is missing): run `pinclip train`"
        )
    sha = weights_sha256(model_dir)
    existing = registry.version_with_weights(sha)
    if existing is not None:
        raise UserError(
            f"{run} is already registered as v{existing}; "
            f"announce it again with `pinclip publish --version {existing}`"
        )
    if version is not None and version in registry.versions():
        raise UserError(
            f"the registry already has v{version}; leave out --version to register as "
            f"v{(registry.latest() or 0) + 1}"
        )
    from encoder.model import PinClipModel

    eval_path = model_dir / EVAL_FILE
    report = json.loads(eval_path.read_text()) if eval_path.exists() else None
    config_path = run / "train_config.json"
    train_config = json.loads(config_path.read_text()) if config_path.exists() else None
    registered, _ = registry.register_model(
        PinClipModel.load(model_dir),
        report,
        parent_version=registry.live(),
        version=version,
        train_config=train_config,
        weights_sha256=sha,
    )
    return int(registered)


@app.command("backfill")
def backfill_cmd(
    version: Annotated[
        int,
        typer.Option(
            min=1,
            help="The candidate just published (`pinclip publish` printed its number): fill "
            "pins_vN with it.",
        ),
    ],
    batch_size: int = typer.Option(64, min=1, help="Pins embedded per batch."),
    switch: bool = typer.Option(True, help="Move the alias to vN once the fill is verified."),
    announce: bool = typer.Option(True, help="Send ModelUpdate stage=promoted after the switch."),
    worker_timeout: float = typer.Option(
        120.0,
        min=0.0,
        help="Wait this long for every running worker to write the candidate too (before the "
        "fill, and again before the switch); then stop with the workers that do not. 0: ask "
        "once. No worker running: nothing to wait for.",
    ),
    id_prefix: str = typer.Option("", help="Only pins whose id starts with this (tests)."),
) -> None:
    """Re-embed every pin with version N into pins_vN, resumably; then switch the alias.

    N is the candidate you just published. Every running worker must write it too before the
    fill starts, or the pins it writes meanwhile to the live version only would be left
    behind: the backfill waits until each member of the workers' consumer group has marked
    pins_vN (up to --worker-timeout). Interrupted? Run it again: it resumes.

    Example: pinclip publish --run var/run2 && pinclip backfill --version 2
    """
    from encoder.manifest import Manifest
    from pinclip.backfill import backfill
    from pinclip.registry import ModelRegistry
    from streams.content import FetchPolicy

    settings = get_settings()
    registry = ModelRegistry(settings.registry_url)
    registry.require(version)
    model_dir = registry.local_dir(version, settings.state_dir / "registry-cache")
    dim = Manifest.load(model_dir).dim
    publish = _publisher(settings)
    vectors = _vectors(settings, dim)
    _check_backfill_target(vectors, version)

    def promoted(v: int) -> None:
        registry.set_live(v)
        if announce:
            publish(registry.model_update(v, "promoted"))

    with _graph(settings) as graph, _writers_not_ready_is_a_user_error():
        report = backfill(
            version,
            model_dir,
            graph,
            vectors,
            settings.state_dir,
            batch_size=batch_size,
            switch=switch,
            id_prefix=id_prefix,
            provider=settings.onnx_provider,
            fetch_policy=FetchPolicy.from_settings(settings),
            on_switched=promoted,
            writers=_writers(settings, vectors),
            writers_timeout_s=worker_timeout,
        )
    typer.echo(json.dumps(report.__dict__))


def _check_backfill_target(vectors: Any, version: int) -> None:
    """Refuse the live version."""
    from pinclip.errors import UserError

    live = vectors.live_version()
    if live == version:
        raise UserError(
            f"v{version} is already live: a backfill fills a new candidate's collection — "
            "publish one first (`pinclip publish --run DIR`)"
        )


def _writers(settings: Settings, vectors: Any) -> Any:
    """The stream's workers as the backfill sees them: their consumer group and their marks."""
    from streams.writers import GroupWriters

    return GroupWriters(settings.kafka_bootstrap, settings.consumer_group, vectors)


@contextmanager
def _writers_not_ready_is_a_user_error() -> Iterator[None]:
    from pinclip.errors import UserError
    from streams.writers import WritersNotReady

    try:
        yield
    except WritersNotReady as exc:
        raise UserError(str(exc)) from None


@app.command("retrain")
def retrain_cmd(
    every: str | None = typer.Option(None, help="Period, e.g. 6h, 30m (start to start)."),
    once: bool = typer.Option(False, help="Run one round and exit."),
    config: Path | None = typer.Option(
        None, help="TrainConfig JSON to train with, instead of the live model's configuration."
    ),
    model: str | None = typer.Option(
        None, help="Train this preset (tiny, small, minilm, default) instead of the live model's."
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Training steps (default: as many as the live model was trained)."
    ),
    tolerance: float = typer.Option(
        0.0,
        min=0.0,
        help="Largest drop of cold-start Recall@10 below the live model that still promotes, "
        "absolute: 0.02 lets 0.36 replace 0.38.",
    ),
    worker_timeout: float = typer.Option(
        120.0,
        min=0.0,
        help="After announcing a promoted candidate, wait this long for every running worker "
        "to write it too before the backfill (as `pinclip backfill`); if one does not, the "
        "round stops before the switch and `pinclip backfill --version N` finishes it.",
    ),
    metrics_port: int = typer.Option(9109, help="Prometheus port in --every mode (0: off)."),
    id_prefix: str = typer.Option("", help="Only pins whose id starts with this (tests)."),
) -> None:
    """Export the graph, train, evaluate, and promote only if cold-start Recall@10 holds.

    By default the candidate is trained exactly as the live model was (its training
    configuration is stored in the registry), on today's graph; --config, --model or --steps
    override it. Promoted: registered, announced as a candidate, backfilled, alias switched,
    announced as promoted. Rejected: never registered, the live model stays.

    Example: pinclip retrain --once            (or --every 6h, with metrics on :9109)
    """
    from pinclip.registry import ModelRegistry
    from pinclip.retrain import RetrainDeps, retrain_forever, retrain_once, retrain_template
    from streams.content import FetchPolicy

    if once == (every is not None):
        raise typer.BadParameter("give exactly one of --every or --once")
    every_s = _duration(every) if every is not None else 0.0
    settings = get_settings()
    registry = ModelRegistry(settings.registry_url)
    template, origin = retrain_template(registry, _live_version(settings, registry), config, model)
    if steps is not None:
        template.steps = steps
    template.progress = False
    template.feature_cache = template.feature_cache or str(settings.state_dir / "features")
    typer.echo(f"training configuration: {origin}; {template.steps} steps")
    work_dir = settings.state_dir / "retrain"
    with _graph(settings) as graph:
        deps = RetrainDeps(
            registry=registry,
            graph=graph,
            vectors=_vectors(settings, template.pinclip_config().embed_dim),
            publish=_publisher(settings),
            state_dir=settings.state_dir,
            id_prefix=id_prefix,
            provider=settings.onnx_provider,
            worker_wait_s=worker_timeout,
            fetch_policy=FetchPolicy.from_settings(settings),
        )
        deps.writers = _writers(settings, deps.vectors)
        if once:
            with _writers_not_ready_is_a_user_error():
                outcome = retrain_once(deps, template, work_dir, tolerance)
            typer.echo(outcome.decision.reason)
            typer.echo(outcome.summary())
            return
        if metrics_port:
            from streams.metrics import serve_metrics

            serve_metrics(metrics_port, settings.metrics_host)
        retrain_forever(deps, template, work_dir, every_s, tolerance)


def _duration(text: str) -> float:
    from trainer.promotion import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from exc


def _live_version(settings: Settings, registry: Any) -> int | None:
    """The version the alias serves (the registry's live.json when no alias exists yet)."""
    from streams.models import manifest_dim

    latest = registry.latest()
    if latest is None:
        return None
    vectors = _vectors(settings, manifest_dim(registry.version_url(latest)))
    try:
        live: int | None = vectors.live_version()
    finally:
        vectors.close()
    return live if live is not None else registry.live()


def register(root: typer.Typer) -> None:
    """Add the training commands to the root `pinclip` app."""
    root.registered_commands.extend(app.registered_commands)
