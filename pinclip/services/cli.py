"""`pinclip services up|env|status|down`: real Kafka, Neo4j and Milvus on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pinclip.services import manager
from pinclip.services.base import Service, ServiceError
from pinclip.services.config import ServicesConfig

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, rich_markup_mode="markdown"
)


err = Console(stderr=True)

Only = Annotated[
    list[str] | None,
    typer.Argument(help="Services to act on (kafka, neo4j, milvus); default: all."),
]


def _services(only: list[str] | None) -> list[Service]:
    try:
        return manager.build_services(ServicesConfig.model_validate({}), only)
    except ServiceError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


@app.command()
def up(only: Only = None) -> None:
    """Fetch (cached) and start the services; return once each answers a real request."""
    services = _services(only)
    with err.status("starting services…") as status:

        def report(message: str) -> None:
            status.update(message)
            err.print(f"  {message}")

        try:
            manager.up(services, report)
        except ServiceError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    err.print('[green]services ready[/green] — `eval "$(pinclip services env)"` to use them')


@app.command()
def down(
    only: Only = None,
    wipe: Annotated[
        bool, typer.Option("--wipe", help="Also delete the services' data and logs.")
    ] = False,
) -> None:
    """Stop exactly the processes `up` started (checked by pid and command line)."""
    services = _services(only)
    failed = manager.down(services, lambda m: err.print(f"  {m}"))
    if failed:
        raise typer.Exit(1)
    if wipe:
        for service in services:
            service.wipe()
            err.print(f"  {service.name}: data removed ({service.dir})")


@app.command()
def status(only: Only = None) -> None:
    """A table of each service: state, pid, address, log. Exit status 3 unless all answer.

    States: ready (started here, answering), starting (started here, not answering yet),
    elsewhere (not started here, but its address answers: `up` uses it, `down` leaves it),
    stopped.
    """
    table = Table("service", "state", "pid", "address")
    # The log path is what one copies next: never cut it (a narrow or piped terminal folds it).
    table.add_column("log", overflow="fold")
    rows = manager.statuses(_services(only))
    for row in rows:
        colour = {"ready": "green", "starting": "yellow", "elsewhere": "cyan"}.get(row.state, "red")
        table.add_row(
            row.name,
            f"[{colour}]{row.state}[/{colour}]",
            str(row.pid or "-"),
            row.address,
            "-" if row.state == "elsewhere" else _shown_path(row.log),
        )
    # Piped output has no width to respect: print whole lines rather than rich's 80 columns.
    Console(width=None if sys.stdout.isatty() else 400).print(table)
    if any(r.state not in ("ready", "elsewhere") for r in rows):
        raise typer.Exit(3)


def _shown_path(path: Path) -> str:
    """Relative to the current directory when below it (shorter), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def env(only: Only = None) -> None:
    """Print `export PINCLIP_...=` lines pointing the app at these services.

    Use it as `eval "$(pinclip services env)"`. It includes the Milvus server
    (PINCLIP_MILVUS_URI), so the worker, the API, backfill and retrain share one Milvus;
    without it the app uses embedded milvus-lite, which one process at a time can open.
    """
    for line in manager.env_lines(_services(only)):
        typer.echo(line)
