"""`pinclip generate-data | export-data | train | eval | publish | backfill | retrain`.

torch, transformers and the stores are imported inside each command, so registering these
commands costs nothing to `pinclip services`.
"""

from __future__ import annotations

import json
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
    pins: int = 3000,
    boards: int = 300,
    topics: int = 12,
    communities: int = 4,
    image_size: int = 64,
    seed: int = 0,
) -> None:
    """Write a synthetic Pin–Board dataset (images, pins.jsonl, saves.jsonl, dataset.json)."""
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
    id_prefix: str = "",
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
    steps: int | None = typer.Option(None, help="Training steps (preset: 600 for minilm)."),
    batch_size: int | None = typer.Option(None, help="Batch size (preset: 64 for minilm)."),
    lr: float | None = typer.Option(None, help="Peak learning rate (preset: 1e-3 for minilm)."),
    neighbor_weight: float = typer.Option(1.0, help="0 = ablation without neighbor alignment."),
    sampler: str = typer.Option("coboard", help="Neighbor sampler: coboard or walk."),
    heldout: float = 0.1,
    split_seed: int = 0,
    seed: int = 0,
    workers: int = typer.Option(1, help="DataLoader workers (live path: text tower trained)."),
    threads: int = typer.Option(0, help="torch CPU threads; 0 = the cores not busy now."),
    vision_checkpoint: Path | None = typer.Option(
        None, help="Local Hugging Face vision checkpoint (ViT, DINOv2, ConvNeXt...) as tower."
    ),
    feature_cache: Path | None = typer.Option(
        None, help="Per-dataset image/text feature cache (default: <state_dir>/features)."
    ),
    resume: bool = True,
    config: Path | None = typer.Option(None, help="TrainConfig JSON; flags above are ignored."),
) -> None:
    """Train with multi-granular + neighbor alignment; resumes from OUT/checkpoint."""
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
    """Cold-start Recall@1/10/50, MRR and text→pin Recall@10 with baselines; writes eval.json."""
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
    Console().print(table)
    typer.echo(f"wrote {path}")


@app.command("publish")
def publish_cmd(
    run: Path | None = typer.Option(None, help="Register this run's model as a new version."),
    version: int | None = typer.Option(None, help="Announce an existing registry version."),
    stage: str = typer.Option("candidate", help="candidate or promoted."),
    send: bool = typer.Option(True, help="Send the ModelUpdate to Kafka."),
) -> None:
    """Register a trained model in the registry (ONNX + manifest + eval.json) and announce it."""
    from pinclip.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings.registry_url)
    if run is not None:
        from encoder.model import PinClipModel
        from trainer.evaluate import EVAL_FILE
        from trainer.loop import MODEL_DIR

        eval_path = run / MODEL_DIR / EVAL_FILE
        report = json.loads(eval_path.read_text()) if eval_path.exists() else None
        model = PinClipModel.load(run / MODEL_DIR)
        version, _ = registry.register_model(
            model, report, parent_version=registry.live(), version=version
        )
        typer.echo(f"registered v{version} at {registry.version_url(version)}")
    if version is None:
        raise typer.BadParameter("give --run or --version")
    if send:
        _publisher(settings)(registry.model_update(version, stage))
        typer.echo(f"sent ModelUpdate v{version} stage={stage} to {settings.topic_model_updates}")


@app.command("backfill")
def backfill_cmd(
    version: Annotated[int, typer.Option(help="Registry version to fill pins_v<N> with.")],
    batch_size: int = 64,
    switch: bool = typer.Option(True, help="Move the alias once the fill is verified."),
    announce: bool = typer.Option(True, help="Send ModelUpdate stage=promoted after the switch."),
    id_prefix: str = typer.Option("", help="Only pins whose id starts with this (tests)."),
) -> None:
    """Re-embed every pin with version N into pins_v<N>, resumably; then switch the alias."""
    from encoder.manifest import Manifest
    from pinclip.backfill import backfill
    from pinclip.registry import ModelRegistry
    from streams.content import FetchPolicy

    settings = get_settings()
    registry = ModelRegistry(settings.registry_url)
    model_dir = registry.local_dir(version, settings.state_dir / "registry-cache")
    dim = Manifest.load(model_dir).dim
    publish = _publisher(settings)

    def promoted(v: int) -> None:
        registry.set_live(v)
        if announce:
            publish(registry.model_update(v, "promoted"))

    with _graph(settings) as graph:
        report = backfill(
            version,
            model_dir,
            graph,
            _vectors(settings, dim),
            settings.state_dir,
            batch_size=batch_size,
            switch=switch,
            id_prefix=id_prefix,
            provider=settings.onnx_provider,
            fetch_policy=FetchPolicy.from_settings(settings),
            on_switched=promoted,
        )
    typer.echo(json.dumps(report.__dict__))


@app.command("retrain")
def retrain_cmd(
    every: str | None = typer.Option(None, help="Period, e.g. 6h, 30m (start to start)."),
    once: bool = typer.Option(False, help="Run one round and exit."),
    config: Path | None = typer.Option(None, help="TrainConfig JSON template."),
    model: str = typer.Option("minilm", help="Preset (see `pinclip train`)."),
    steps: int | None = typer.Option(None, help="Training steps (the preset's)."),
    tolerance: float = typer.Option(0.0, help="Allowed Recall@10 drop vs the live model."),
    metrics_port: int = typer.Option(9109, help="Prometheus port in --every mode (0: off)."),
    id_prefix: str = "",
) -> None:
    """Export graph, train, evaluate, promote if cold-start Recall@10 holds, backfill, switch."""
    from encoder.config import PinClipConfig
    from pinclip.registry import ModelRegistry
    from pinclip.retrain import RetrainDeps, retrain_forever, retrain_once
    from streams.content import FetchPolicy
    from trainer.config import TrainConfig
    from trainer.promotion import parse_duration

    if once == (every is not None):
        raise typer.BadParameter("give exactly one of --every or --once")
    settings = get_settings()
    template = (
        TrainConfig.load(config)
        if config
        else TrainConfig.preset(
            model, steps=steps, feature_cache=str(get_settings().state_dir / "features")
        )
    )
    template.progress = False
    dim = (
        PinClipConfig.from_dict(template.model_config).embed_dim
        if template.model_config
        else template.pinclip_config().embed_dim
    )
    work_dir = settings.state_dir / "retrain"
    with _graph(settings) as graph:
        deps = RetrainDeps(
            registry=ModelRegistry(settings.registry_url),
            graph=graph,
            vectors=_vectors(settings, dim),
            publish=_publisher(settings),
            state_dir=settings.state_dir,
            id_prefix=id_prefix,
            provider=settings.onnx_provider,
            fetch_policy=FetchPolicy.from_settings(settings),
        )
        if once:
            outcome = retrain_once(deps, template, work_dir, tolerance)
            typer.echo(f"{outcome.decision.reason}; version={outcome.version}")
            return
        if metrics_port:
            from streams.metrics import serve_metrics

            serve_metrics(metrics_port, settings.metrics_host)
        assert every is not None
        retrain_forever(deps, template, work_dir, parse_duration(every), tolerance)


def register(root: typer.Typer) -> None:
    """Add the training commands to the root `pinclip` app."""
    root.registered_commands.extend(app.registered_commands)
