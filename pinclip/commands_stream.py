"""`pinclip produce`, `pinclip worker`, `pinclip api`: the streaming pipeline's commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pinclip.settings import get_settings

app = typer.Typer(add_completion=False)


@app.command()
def produce(
    source: str = typer.Argument("-", help="JSONL file, or - for stdin."),
    topic: str = typer.Option(
        "created", help="created | repinned | model_updates, or a literal topic name."
    ),
) -> None:
    """Produce JSON lines to a topic, one record per line (validated by the worker)."""
    from streams.config import WorkerConfig
    from streams.producer import EventProducer, produce_lines

    config = WorkerConfig.from_settings(get_settings())
    name = getattr(config.topics, topic, topic)
    with EventProducer(config.kafka_bootstrap, config.topics) as producer:
        if source == "-":
            count = produce_lines(sys.stdin.buffer, name, producer)
        else:
            with Path(source).open("rb") as handle:
                count = produce_lines(handle, name, producer)
    typer.echo(f"produced {count} records to {name}")


@app.command()
def worker(
    metrics_port: int | None = typer.Option(None, help="Override PINCLIP_METRICS_PORT; 0: none."),
) -> None:
    """Run the streaming worker (Faust) until interrupted."""
    from pinclip.worker import run
    from streams.config import WorkerConfig

    settings = get_settings()
    overrides = {} if metrics_port is None else {"metrics_port": metrics_port or None}
    run(WorkerConfig.from_settings(settings, **overrides), loglevel=settings.log_level)


@app.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default PINCLIP_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default PINCLIP_API_PORT)."),
) -> None:
    """Serve the query API and the gallery: similar pins by id, text or image.

    Open http://HOST:PORT/ for the gallery, /docs for the OpenAPI reference.
    Example: pinclip api --host 0.0.0.0 --port 8080 (set PINCLIP_API_KEY first when exposed).
    """
    from pinclip.api.serve import serve

    settings = get_settings()
    serve(settings, host or settings.api_host, port if port is not None else settings.api_port)


def register(root: typer.Typer) -> None:
    """Add the commands at the top level of `pinclip`."""
    root.registered_commands.extend(app.registered_commands)
