"""The `pinclip` command.

Sub-commands live next to the code they drive; heavy imports (torch, transformers) stay inside
the command functions so `pinclip services` starts fast. `USER_HELP` is what `--help` shows.
"""

from __future__ import annotations

import os
import sys

import typer

from pinclip.logging import configure_logging
from pinclip.settings import get_settings

USER_HELP = """PinCLIP Stream: real-time cold-start embeddings for pins.

A new pin (image, title, description) produced to Kafka is embedded by a PinCLIP-style
multimodal encoder and becomes searchable for similar pins within about a second: a Faust
worker writes its vector to Milvus and its board edge to Neo4j. A periodic retrain learns from
the Pin–Board graph and swaps better models into the stream without mixing versions.

Settings are PINCLIP_* environment variables (see the README). A first run, in order:
services up, generate-data, train, eval, publish, worker, stream-dataset, api, retrain.
`pinclip COMMAND --help` explains each command with an example.
"""

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=USER_HELP, rich_markup_mode="markdown"
)


@app.callback()
def _root() -> None:
    settings = get_settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.weights_dir is not None:
        # encoder.weights imports nothing of ours: the setting reaches it as its variable.
        os.environ["PINCLIP_WEIGHTS_DIR"] = str(settings.weights_dir)
    if not sys.stderr.isatty():
        # transformers draws its own tqdm bars ("Loading weights"); piped they are carriage-return
        # noise in a log. It reads this switch when it is first imported, i.e. later than here.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _register() -> None:
    # Each area registers its commands here; keep one line per area.
    from pinclip.services.cli import app as services_app

    app.add_typer(
        services_app,
        name="services",
        help="Local Kafka, Neo4j and a Milvus server: up, env, status, down.",
    )
    from pinclip.services.engine_cli import app as engine_app

    app.add_typer(engine_app, name="engine", help="A podman engine with a Docker API (CI).")
    from pinclip.commands_stream import register as register_stream

    register_stream(app)  # produce, worker, api
    from pinclip.commands_train import register as register_train

    register_train(app)  # generate-data, export-data, train, eval
    from pinclip.commands_models import register as register_models

    register_models(app)  # publish, backfill, retrain
    from pinclip.commands_reembed import register as register_reembed

    register_reembed(app)  # backfill-worker
    from pinclip.commands_compose import register as register_compose

    register_compose(app)  # bootstrap, wait-graph, stream-sample (compose/dev.yml)
    from pinclip.commands_datasets import app as datasets_app

    app.add_typer(datasets_app, name="datasets", help="Real evaluation datasets.")
    from pinclip.commands_weights import app as weights_app

    app.add_typer(weights_app, name="weights", help="Pretrained image weights: list, fetch.")
    app.command("demo")(demo)


def demo(
    pins: int = typer.Option(1200, help="Pins in the generated dataset."),
    train_steps: int | None = typer.Option(
        None, help="Training steps for the demo model (first run) (the preset's: 600)."
    ),
    rate: float = typer.Option(100.0, help="Events produced per second."),
    keep_services: bool = typer.Option(False, help="Leave Kafka and Neo4j running afterwards."),
    gallery: bool = typer.Option(
        True, help="End by serving the gallery and API until Ctrl-C (--no-gallery: terminal only)."
    ),
) -> None:
    """Local end-to-end run: services, dataset, model, stream, similar pins for new pins."""
    from pinclip.demo import DemoOptions, run_demo

    opts = DemoOptions(
        pins=pins,
        train_steps=train_steps,
        rate=rate,
        keep_services=keep_services,
        gallery=gallery,
    )
    run_demo(get_settings(), opts)


def main() -> None:
    _register()
    try:
        app()
    except Exception as exc:
        from pinclip.errors import user_message

        message = user_message(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
