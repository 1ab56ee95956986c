"""`pinclip publish | backfill | retrain`: a trained model's way into the stream — registered,
announced to the workers, backfilled into its own collection, promoted by moving the alias.

The stores are imported inside each command, so registering these commands costs nothing to
`pinclip services`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pinclip.settings import Settings, get_settings

if TYPE_CHECKING:
    from encoder.registry import RegistryReader
    from graph_store import GraphStore
    from pinclip.registry import ModelRegistry
    from pinclip.retrain import Fill, RetrainDeps
    from streams.events import ModelUpdate
    from streams.writers import WriterCheck
    from vector_store import VectorStore
    from vector_store.backend import VectorVersions

app = typer.Typer(add_completion=False)


def _graph(settings: Settings) -> GraphStore:
    from pinclip.factory import Factory

    return Factory.from_settings(settings).graph_store()


def _vectors(settings: Settings, dim: int) -> VectorStore:
    from pinclip.factory import Factory

    return Factory.from_settings(settings).vector_store(dim)


def _registry(settings: Settings) -> ModelRegistry:
    from pinclip.factory import Factory

    return Factory.from_settings(settings).registry()


def _publisher(settings: Settings) -> Callable[[ModelUpdate], None]:
    from pinclip.registry import send_model_update

    return lambda update: send_model_update(
        settings.kafka_bootstrap, settings.topic_model_updates, update
    )


# The backfill as a consumer group (pinclip.reembed), for `backfill` and `retrain` alike.
GroupWorkers = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Backfill as a Kafka consumer group: plan pin-id ranges onto pins.reembed.vN and "
        "start this many workers here (0: none here — run `pinclip backfill-worker` on other "
        "machines). Left out: one process.",
    ),
]
ItemSize = Annotated[int, typer.Option(min=1, help="Pins per work item (with --workers).")]


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

    settings = get_settings()
    registry = _registry(settings)
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


def _register_run(registry: ModelRegistry, run: Path, version: int | None) -> int:
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
    workers: GroupWorkers = None,
    item_size: ItemSize = 256,
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
    from streams.content import FetchPolicy

    settings = get_settings()
    registry = _registry(settings)
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

    if workers is not None:
        from pinclip.commands_reembed import group_backfill

        report = group_backfill(
            settings, version, vectors, workers, item_size, switch, id_prefix, promoted,
            _writers(settings, vectors), worker_timeout,
        )  # fmt: skip
        typer.echo(json.dumps(report.__dict__))
        return
    with _graph(settings) as graph, backfill_stops_are_user_errors():
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


def _check_backfill_target(vectors: VectorVersions, version: int) -> None:
    """Refuse the live version."""
    from pinclip.errors import UserError

    live = vectors.live_version()
    if live == version:
        raise UserError(
            f"v{version} is already live: a backfill fills a new candidate's collection — "
            "publish one first (`pinclip publish --run DIR`)"
        )


def _writers(settings: Settings, vectors: VectorVersions) -> WriterCheck:
    """The stream's workers as the backfill sees them: their consumer group and their marks."""
    from streams.writers import GroupWriters

    return GroupWriters(settings.kafka_bootstrap, settings.consumer_group, vectors)


@contextmanager
def backfill_stops_are_user_errors() -> Iterator[None]:
    """A backfill that stops for want of its writers (a stream worker not writing the candidate)
    or of its group (every member exited) keeps what is done: one line, run it again."""
    from pinclip.errors import UserError
    from pinclip.reembed.group import BackfillStalled
    from streams.writers import WritersNotReady

    try:
        yield
    except (WritersNotReady, BackfillStalled) as exc:
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
    workers: GroupWorkers = None,
    item_size: ItemSize = 256,
) -> None:
    """Export the graph, train, evaluate, and promote only if cold-start Recall@10 holds.

    By default the candidate is trained exactly as the live model was (its training
    configuration is stored in the registry), on today's graph; --config, --model or --steps
    override it. Promoted: registered, announced as a candidate, backfilled, alias switched,
    announced as promoted. Rejected: never registered, the live model stays.

    Example: pinclip retrain --once            (or --every 6h, with metrics on :9109)
    """
    from pinclip.retrain import RetrainDeps, retrain_forever, retrain_once, retrain_template
    from streams.content import FetchPolicy

    if once == (every is not None):
        raise typer.BadParameter("give exactly one of --every or --once")
    every_s = _duration(every) if every is not None else 0.0
    settings = get_settings()
    registry = _registry(settings)
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
        if workers is not None:
            deps.fill = _group_fill(settings, deps, workers, item_size)
        if once:
            with backfill_stops_are_user_errors():
                outcome = retrain_once(deps, template, work_dir, tolerance)
            typer.echo(outcome.decision.reason)
            typer.echo(outcome.summary())
            return
        if metrics_port:
            from streams.metrics import serve_metrics

            serve_metrics(metrics_port, settings.metrics_host)
        retrain_forever(deps, template, work_dir, every_s, tolerance)


def _group_fill(settings: Settings, deps: RetrainDeps, workers: int, item_size: int) -> Fill:
    from pinclip.reembed.group import GroupOptions, group_fill
    from streams.config import WorkerConfig

    options = GroupOptions(
        workers=workers,
        item_size=item_size,
        id_prefix=deps.id_prefix,
        writers=deps.writers,
        writers_timeout_s=deps.worker_wait_s,
        progress=False,
    )
    return group_fill(WorkerConfig.from_settings(settings), deps.graph, deps.vectors, options)


def _duration(text: str) -> float:
    from trainer.promotion import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from exc


def _live_version(settings: Settings, registry: RegistryReader) -> int | None:
    """The version the alias serves (the registry's live.json when no alias exists yet)."""
    latest = registry.latest()
    if latest is None:
        return None
    vectors = _vectors(settings, registry.dim(latest))
    try:
        live: int | None = vectors.live_version()
    finally:
        vectors.close()
    return live if live is not None else registry.live()


def register(root: typer.Typer) -> None:
    """Add the model lifecycle commands to the root `pinclip` app."""
    root.registered_commands.extend(app.registered_commands)
