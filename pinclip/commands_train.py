"""`pinclip generate-data | export-data | train | eval`: datasets in, a trained and evaluated
model out. Publishing, backfilling and retraining are `pinclip.commands_models`.

torch, transformers and the stores are imported inside each command, so registering these
commands costs nothing to `pinclip services`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pinclip.settings import get_settings

app = typer.Typer(add_completion=False)


@app.command("generate-data")
def generate_data(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    pins: int = typer.Option(3000, min=1, help="Pins to generate."),
    boards: int = typer.Option(300, min=1, help="Boards the pins are saved to (Zipf sizes)."),
    topics: int = typer.Option(12, min=1, help="Latent topics (shape + hue, topic words)."),
    communities: int = typer.Option(
        4, min=1, help="Groups of topics boards mix: the signal only the graph carries."
    ),
    image_size: int = typer.Option(64, min=8, help="Side of the square PNG images (pixels)."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same dataset."),
) -> None:
    """Write a synthetic Pin–Board dataset (images, pins.jsonl, saves.jsonl, dataset.json).

    The format is the one any dataset must have (docs/trainer.md); images are PNG files under
    OUT/images, referenced by relative paths.

    Example: pinclip generate-data --out var/data --pins 2000
    """
    from trainer.generator import GeneratorConfig, generate

    cfg = GeneratorConfig(
        num_pins=pins,
        num_boards=boards,
        num_topics=topics,
        num_communities=communities,
        image_size=image_size,
        seed=seed,
    )
    latents, _ = generate(out, cfg)
    typer.echo(f"wrote {len(latents)} pins to {out}")


@app.command("export-data")
def export_data(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    id_prefix: str = typer.Option("", help="Only pins whose id starts with this."),
) -> None:
    """Export the live Neo4j graph to the offline dataset format."""
    from pinclip.factory import Factory
    from trainer.export_graph import export_graph

    with Factory.from_settings(get_settings()).graph_store() as graph:
        n_pins, n_saves = export_graph(graph, out, id_prefix=id_prefix)
    typer.echo(f"exported {n_pins} pins and {n_saves} saves to {out}")


@app.command("train")
def train_cmd(
    data: Annotated[str, typer.Option(help="Dataset directory or fsspec URL.")],
    out: Annotated[Path, typer.Option(help="Run directory (checkpoint, model/, train.json).")],
    model: str = typer.Option(
        "stem",
        help="Preset: stem (recommended: pretrained MobileNetV2 stem), minilm (fast: feature-bank "
        "image tower), small, tiny (tests), default.",
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Optimizer steps, one batch each (preset: 600 for stem and minilm)."
    ),
    batch_size: int | None = typer.Option(
        None, min=2, help="Pins per batch, in-batch negatives (preset: 64 for minilm)."
    ),
    lr: float | None = typer.Option(
        None, help="Peak learning rate, warmup then cosine (preset: 1e-3 for minilm)."
    ),
    neighbor_weight: float = typer.Option(1.0, help="0 = ablation without neighbor alignment."),
    sampler: str = typer.Option("coboard", help="Neighbor sampler: coboard or walk."),
    heldout: float = typer.Option(
        0.1, help="Fraction of saved pins held out (with all their saves) for `pinclip eval`."
    ),
    split_seed: int = typer.Option(0, help="Seed of the held-out split."),
    seed: int = typer.Option(0, help="Seed of initialisation, batch order and sampling."),
    workers: int = typer.Option(
        1, min=0, help="DataLoader worker processes (live path only: text tower trained)."
    ),
    threads: int = typer.Option(0, help="torch CPU threads; 0 = the cores not busy now."),
    vision_checkpoint: Path | None = typer.Option(
        None, help="Local Hugging Face vision checkpoint (ViT, DINOv2, ConvNeXt...) as tower."
    ),
    feature_cache: Path | None = typer.Option(
        None, help="Per-dataset image/text feature cache (default: `STATE_DIR/features`)."
    ),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint when it exists."),
    config: Path | None = typer.Option(None, help="TrainConfig JSON; flags above are ignored."),
) -> None:
    """Train with multi-granular + neighbor alignment; resumes from OUT/checkpoint.

    Writes OUT/model (the trained encoder), OUT/train.json (loss history) and
    OUT/train_config.json (kept in the registry by `pinclip publish`, reused by retrain).

    Example: pinclip train --data var/data --out var/run --model minilm --steps 300
    """
    from trainer.config import TrainConfig
    from trainer.loop import train

    if config is not None:
        cfg = TrainConfig.load(config)
        cfg.data, cfg.out_dir = data, str(out)
    else:
        cfg = TrainConfig.preset(
            model,
            data=data,
            out_dir=str(out),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            neighbor_sampler=sampler,
            heldout_fraction=heldout,
            split_seed=split_seed,
            seed=seed,
            num_workers=workers,
            threads=threads,
            vision_checkpoint=str(vision_checkpoint) if vision_checkpoint else None,
            feature_cache=str(feature_cache or get_settings().state_dir / "features"),
        )
        cfg.weights.neighbor = neighbor_weight
    result = train(cfg, resume=resume)
    typer.echo(f"model: {result.model_dir} ({result.steps} steps, {result.samples_per_s:.0f}/s)")


@app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Option(help="Run directory written by `pinclip train`.")],
    data: str | None = typer.Option(None, help="Dataset (default: the one it was trained on)."),
    ablation: Path | None = typer.Option(None, help="Run trained with --neighbor-weight 0."),
    minilm: bool = typer.Option(True, help="Include the frozen MiniLM text baseline."),
) -> None:
    """Cold-start Recall@1/10/50, MRR and text→pin Recall@10 with baselines; writes eval.json.

    Each held-out pin (removed from training with all its saves, like a brand-new pin) queries
    the training pins by content alone; the relevant pins are those sharing a board with it.
    recall@K = |relevant in top K| / min(K, |relevant|), averaged over queries — so 1.0 is
    reachable, and recall@1 can exceed recall@10 (a pin with 5 relevant pins and one at rank 1
    scores 1.0 at K=1 but 2/5 at K=10 if only 2 of them are in its top 10).

    Example: pinclip eval --run var/run
    """
    from rich.console import Console
    from rich.table import Table

    from trainer.config import TrainConfig
    from trainer.dataset import read_dataset
    from trainer.evaluate import evaluate, write_report
    from trainer.loop import MODEL_DIR

    cfg = TrainConfig.load(run / "train_config.json")
    dataset = read_dataset(data or cfg.data)
    report = evaluate(
        dataset,
        run / MODEL_DIR,
        cfg.heldout_fraction,
        cfg.split_seed,
        ablation_dir=None if ablation is None else ablation / MODEL_DIR,
        baselines=("random", "colour_histogram", "minilm_text")
        if minilm
        else ("random", "colour_histogram"),
    )
    path = write_report(report, run / MODEL_DIR)
    cols = ["recall@1", "recall@10", "recall@50", "mrr", "text_to_pin@10"]
    table = Table(title=f"cold start: {report['split']['queries']} new pins")
    table.add_column("system")
    for col in cols:
        table.add_column(col, justify="right")
    for name, row in report["rows"].items():
        table.add_row(name, *(f"{row[c]:.4f}" if c in row else "n/a" for c in cols))
    table.caption = EVAL_CAPTION
    Console().print(table)
    typer.echo(f"wrote {path}")


EVAL_CAPTION = (
    "recall@K = |relevant in top K| / min(K, |relevant|), relevant = training pins that share a "
    "board with the new pin; the denominator grows with K, so recall@1 can exceed recall@10. "
    "mrr: 1 / rank of the first relevant pin. text_to_pin@10: the pin's own text finds it."
)


def register(root: typer.Typer) -> None:
    """Add the training commands to the root `pinclip` app."""
    root.registered_commands.extend(app.registered_commands)
