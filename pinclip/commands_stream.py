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
    """Produce JSON lines to a topic, one record per line (validated by the worker).

    Lines are sent as they are, keyed by their pin_id: a malformed one reaches the worker and
    is dead-lettered on pins.dlq with the reason. For a dataset, use `pinclip stream-dataset`.

    Example: pinclip produce new_pins.jsonl   (or: pinclip produce saves.jsonl --topic repinned)
    """
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


@app.command("stream-dataset")
def stream_dataset(
    data: str = typer.Argument(
        ..., help="Dataset directory or fsspec URL (dataset.json, pins.jsonl, saves.jsonl)."
    ),
    images: str = typer.Option(
        "inline",
        help="inline: the image bytes go in the event (base64; small images, any worker); "
        "uri: the image's URI goes (local paths as absolute file:// URIs, which the worker "
        "reads on its own filesystem, inside PINCLIP_FETCH_FILE_ROOTS).",
    ),
    limit: int | None = typer.Option(None, min=1, help="Only the first N pins and their saves."),
    rate: float = typer.Option(0.0, min=0.0, help="Events per second; 0: as fast as possible."),
    wait: bool = typer.Option(
        True, help="Wait until the worker processed every event, then report the outcome."
    ),
    timeout: float = typer.Option(600.0, min=1.0, help="Longest wait for the worker (seconds)."),
) -> None:
    """Stream a dataset into the live system: pins → new-pin events, saves → repin events.

    Each pin is created on the board of its first save; its other saves become repins. With
    --wait (the default) it then follows the worker's consumer group until every event is
    written to Milvus and Neo4j or dead-lettered, and says which.

    Example: pinclip stream-dataset var/data --limit 500
    """
    from pinclip.stream_dataset import stream_dataset as run

    run(get_settings(), data, images=images, limit=limit, rate=rate, wait=wait, timeout_s=timeout)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(None, help="Override PINCLIP_METRICS_PORT; 0: none."),
) -> None:
    """Run the streaming worker (Faust) until interrupted.

    Consumes pins.created and pins.repinned, embeds new pins with the served model version(s),
    writes Milvus and Neo4j, and reports each pin on pins.embedded or pins.dlq. Logs a
    `worker_progress` line every PINCLIP_PROGRESS_INTERVAL_S; metrics on PINCLIP_METRICS_PORT.

    Example: pinclip worker > var/worker.log 2>&1 &
    """
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
