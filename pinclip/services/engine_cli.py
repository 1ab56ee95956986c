"""`pinclip engine install|build|up|env|status|down|run`: a podman engine with a Docker API for
CI and for machines without Docker (docs/services.md, "A container engine without Docker")."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console

from pinclip.services import engine as eng
from pinclip.services import engine_images as images

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
err = Console(stderr=True)

NoApp = Annotated[
    bool, typer.Option("--no-app", help="Build only the base and stand-in images, not the app.")
]


def _report(message: str) -> None:
    err.print(f"  {message}")


def _engine() -> eng.Engine:
    return eng.Engine(eng.EngineConfig.model_validate({}))


def _env(engine: eng.Engine) -> dict[str, str]:
    return engine.env(images.image_names(engine.config).env())


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]{exc}[/red]")
    return typer.Exit(1)


@app.command()
def install() -> None:
    """Install podman, runc, debootstrap and docker-compose from Debian where missing."""
    try:
        installed = eng.install(_report)
    except eng.EngineError as exc:
        raise _fail(exc) from exc
    err.print(f"installed: {' '.join(installed)}" if installed else "nothing to install")


@app.command()
def build(no_app: NoApp = False) -> None:
    """Build (or reuse from the machine's cache) the base, stand-in and app images."""
    try:
        timings = images.build_all(_engine().config, _report, app=not no_app)
    except (eng.EngineError, OSError) as exc:
        raise _fail(exc) from exc
    typer.echo(timings.table())


def _up(no_app: bool) -> images.Timings:
    engine = _engine()
    timings = images.Timings()
    timings.timed("install podman & co. (when missing)", lambda: eng.install(_report))
    built = images.build_all(engine.config, _report, app=not no_app)
    timings.steps.extend(built.steps)
    timings.timed("start the Docker API socket", lambda: engine.start(_report))
    return timings


@app.command()
def up(no_app: NoApp = False) -> None:
    """install + build + serve the Docker API; then `eval "$(pinclip engine env)"`."""
    try:
        timings = _up(no_app)
    except (eng.EngineError, OSError) as exc:
        raise _fail(exc) from exc
    typer.echo(timings.table())


@app.command()
def env() -> None:
    """Print `export` lines: DOCKER_HOST, the Testcontainers settings and the image names."""
    for line in eng.shell_exports(_env(_engine())):
        typer.echo(line)


@app.command()
def status() -> None:
    """Say whether the engine serves its socket (exit 3 if not)."""
    engine = _engine()
    if engine.running() and eng.ping(engine.docker_host()):
        typer.echo(f"running: {engine.docker_host()}")
        return
    typer.echo("stopped")
    raise typer.Exit(3)


@app.command()
def down() -> None:
    """Remove the containers, networks and volumes created since `up`; stop the socket."""
    try:
        _engine().stop(_report)
    except (eng.EngineError, OSError) as exc:
        raise _fail(exc) from exc


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(ctx: typer.Context, no_app: NoApp = False) -> None:
    """`pinclip engine run -- CMD ...`: up, run CMD with the engine's environment, down (always).
    Exits with CMD's status; prints each step's time."""
    if not ctx.args:
        raise typer.BadParameter("give a command after --")
    engine = _engine()
    code = 1
    try:
        timings = _up(no_app)
        started = time.monotonic()
        code = subprocess.run(ctx.args, env={**os.environ, **_env(engine)}, check=False).returncode
        timings.steps.append((" ".join(ctx.args), time.monotonic() - started))
        timings.timed("stop the engine", lambda: engine.stop(_report))
        typer.echo(timings.table())
    except (eng.EngineError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
    finally:
        if engine.running():
            engine.stop(_report)
    raise typer.Exit(code)
