"""`pinclip backfill --workers N` and `pinclip backfill-worker`: the backfill as a consumer
group over Kafka partitions (pinclip.reembed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from pinclip.settings import Settings, get_settings

if TYPE_CHECKING:
    from pinclip.backfill import BackfillReport
    from streams.writers import WriterCheck
    from vector_store.backend import VectorVersions

app = typer.Typer(add_completion=False)


def group_backfill(
    settings: Settings,
    version: int,
    vectors: VectorVersions,
    workers: int,
    item_size: int,
    switch: bool,
    id_prefix: str,
    on_switched: Callable[[int], None],
    writers: WriterCheck | None,
    writers_timeout_s: float,
) -> BackfillReport:
    """Plan, run `workers` members here, wait for the group, move the alias."""
    from pinclip.commands_models import backfill_stops_are_user_errors
    from pinclip.factory import Factory
    from pinclip.reembed.group import GroupOptions, ReembedGroup
    from streams.config import WorkerConfig

    options = GroupOptions(
        workers=workers,
        item_size=item_size,
        id_prefix=id_prefix,
        switch=switch,
        on_switched=on_switched,
        writers=writers,
        writers_timeout_s=writers_timeout_s,
    )
    config = WorkerConfig.from_settings(settings)
    with (
        Factory.from_settings(settings).graph_store() as graph,
        backfill_stops_are_user_errors(),
    ):
        return ReembedGroup(config, version, graph, vectors, options).run()


@app.command("backfill-worker")
def backfill_worker_cmd(
    version: int = typer.Option(..., min=1, help="The version being backfilled."),
) -> None:
    """One more member of a backfill's consumer group (see `pinclip backfill --workers`).

    Start it on any machine with the same PINCLIP_* settings; it takes a share of the work
    topic's partitions and exits once the latest plan of vN is complete.
    """
    from pinclip.reembed.worker import run
    from streams.config import WorkerConfig

    done = run(WorkerConfig.from_settings(get_settings()), version)
    typer.echo(f"backfill-worker: {done} items of v{version} embedded here")


def register(root: typer.Typer) -> None:
    root.registered_commands.extend(app.registered_commands)
