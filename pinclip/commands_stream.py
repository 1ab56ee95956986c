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
def api() -> None:
    """Serve the query API (similar pins by id, text or image) on PINCLIP_API_HOST:PORT."""
    import uvicorn

    from pinclip.api import create_api_from_settings

    settings = get_settings()
    uvicorn.run(create_api_from_settings(settings), host=settings.api_host, port=settings.api_port)


def register(root: typer.Typer) -> None:
    """Add the commands at the top level of `pinclip`."""
    root.registered_commands.extend(app.registered_commands)
