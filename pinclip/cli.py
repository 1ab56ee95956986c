"""The `pinclip` command. Sub-commands live next to the code they drive; heavy imports
(torch, transformers) stay inside the command functions so `pinclip services` starts fast."""

from __future__ import annotations

import typer

from pinclip.logging import configure_logging
from pinclip.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    settings = get_settings()
    configure_logging(json=settings.log_json, level=settings.log_level)


def _register() -> None:
    # Each area registers its commands here; keep one line per area.
    from pinclip.services.cli import app as services_app

    app.add_typer(services_app, name="services", help="Local Kafka, Neo4j and Milvus.")
    from pinclip.services.engine_cli import app as engine_app

    app.add_typer(engine_app, name="engine", help="A podman engine with a Docker API (CI).")
    from pinclip.commands_stream import register as register_stream

    register_stream(app)  # produce, worker, api
    from pinclip.commands_train import register as register_train

    register_train(app)  # generate-data, export-data, train, eval, publish, backfill, retrain
    from pinclip.commands_compose import register as register_compose

    register_compose(app)  # bootstrap, wait-graph, stream-sample (compose/dev.yml)
    from pinclip.commands_datasets import app as datasets_app

    app.add_typer(datasets_app, name="datasets", help="Real evaluation datasets.")
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
    app()


if __name__ == "__main__":
    main()
