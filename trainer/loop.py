"""The training loop, as named steps: set up a run, resume it, iterate batches, take one
optimiser step, checkpoint, finish. `train()` only strings them together (OpenCLIP keeps
`main` apart from `train_one_epoch` the same way).

Launch single-process (`pinclip train`) or with torchrun: when torchrun's RANK/WORLD_SIZE are in
the environment the loop joins a process group (nccl on CUDA, gloo on CPU) and wraps the model
in DistributedDataParallel. In-batch negatives stay per rank (no cross-rank gather): simple and
correct, at the cost of fewer negatives per anchor than one big batch.

Two data paths, same objective: when the text tower is frozen (the recommended preset), images
and the tower's outputs are computed once per dataset (`trainer.features`) and a step only runs
what trains; otherwise DataLoader workers decode and tokenize every batch (`trainer.data`).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from encoder.image_features import FeatureBankTower
from encoder.model import PinClipModel
from trainer.config import TrainConfig
from trainer.data import EpochBatchSampler, PinBatch, PinPairDataset
from trainer.dataset import read_dataset
from trainer.evaluate import embed_with_model
from trainer.feature_batches import FeatureBatch, FeatureBatcher
from trainer.features import build_features, image_features, text_tower_frozen
from trainer.guard import Validation, choose_heads, embed_cached, head_state, validation_split
from trainer.guard import report as guard_report
from trainer.neighbors import PinBoardGraph
from trainer.objective import PinClipObjective
from trainer.optim import build_optimizer, choose_threads, freeze_text_layers, warmup_cosine
from trainer.progress import Progress
from trainer.split import ColdStartSplit, cold_start_split

__all__ = [
    "CHECKPOINT_DIR",
    "MODEL_DIR",
    "REPORT_FILE",
    "STATE_FILE",
    "PinClipObjective",
    "TrainResult",
    "build_optimizer",
    "freeze_text_layers",
    "train",
    "warmup_cosine",
]

log = structlog.get_logger("trainer")

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "train_state.pt"
MODEL_DIR = "model"
REPORT_FILE = "train.json"


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    samples_per_s: float = 0.0


@dataclass
class TrainingRun:
    """Everything one run holds between its steps."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    joined_process_group: bool
    split: ColdStartSplit  # the evaluation's split (its held-out pins never train)
    validation: Validation  # what trains, and the guard's validation set carved from it
    head_start: dict[str, dict[str, torch.Tensor]]  # step-0 text/pin heads (trainer.guard)
    model: PinClipModel
    objective: PinClipObjective
    trainable: nn.Module  # the objective, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    pairs: PinPairDataset
    batcher: FeatureBatcher | None  # None: the live DataLoader path
    frozen_text_params: int
    feature_rows: dict[str, int] = field(default_factory=dict)  # pin_id → cached feature row
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def state_path(self) -> Path:
        return Path(self.cfg.out_dir) / CHECKPOINT_DIR / STATE_FILE


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _distributed() -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, joined_here); joins the process group under torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0, False
    joined = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        joined = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), joined


def setup_run(cfg: TrainConfig) -> TrainingRun:
    """Process group, device, threads, data split, model, features, optimiser and schedule."""
    rank, world, local_rank, joined = _distributed()
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(choose_threads(cfg.threads))
    seed_everything(cfg.seed + rank)
    dataset = read_dataset(cfg.data)
    split = cold_start_split(dataset, cfg.heldout_fraction, cfg.split_seed)
    validation = validation_split(dataset, split, cfg.validation_fraction, cfg.split_seed)
    model = PinClipModel(cfg.pinclip_config(), cfg.tokenizer_json())
    head_start = head_state(model)
    frozen = freeze_text_layers(model, cfg.freeze_text_layers)
    pairs = PinPairDataset.from_dataset(
        dataset,
        validation.train.train_pin_ids,
        PinBoardGraph(validation.train.train_saves),
        image_pre=model.image_preprocessor(),
        text_pre=model.text_preprocessor(),
        sampler=cfg.neighbor_sampler,
        with_neighbors=cfg.weights.neighbor > 0,
        seed=cfg.seed,
    )
    batcher, rows = None, {}
    if text_tower_frozen(model):
        # Validation pins get features too (after the training pins: they fit nothing).
        training = {p.pin_id for p in pairs.pins}
        held = (
            [p for p in validation.index.pins if p.pin_id not in training]
            if validation.index
            else []
        )
        pins = [*pairs.pins, *held]
        features = build_features(model, dataset, pins, cfg.feature_cache_dir(), len(pairs.pins))
        batcher = FeatureBatcher(pairs, features, cfg.augment, cfg.seed)
        rows = {p.pin_id: i for i, p in enumerate(pins)}
    elif isinstance(model.vision, FeatureBankTower):  # the text tower trains: images go live
        pixels = image_features(model, dataset, pairs.pins, cfg.feature_cache_dir())
        model.vision.fit(pixels, seed=0)
    objective = PinClipObjective(model, cfg.weights, cfg.init_temperature).to(device)
    optimizer = build_optimizer(objective, model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.warmup_steps, cfg.steps)
    )
    trainable: nn.Module = objective
    if world > 1 or dist.is_initialized():
        trainable = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[local_rank] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    return TrainingRun(
        cfg, rank, world, device, joined, split, validation, head_start, model, objective,
        trainable, optimizer, scheduler, pairs, batcher, frozen, feature_rows=rows,
    )  # fmt: skip


def resume_from_checkpoint(run: TrainingRun) -> None:
    """Model, temperatures, optimiser, schedule, step, history and RNG from the last save."""
    if not run.state_path.exists():
        return
    state = torch.load(run.state_path, map_location=run.device, weights_only=False)
    run.objective.load_state_dict(state["objective"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.step, run.history = int(state["step"]), list(state["history"])
    torch.set_rng_state(state["torch_rng"])
    log.info("resumed", step=run.step, checkpoint=str(run.state_path))


def save_checkpoint(run: TrainingRun) -> None:
    path = run.state_path
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "objective": run.objective.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "step": run.step,
        "history": run.history,
        "torch_rng": torch.get_rng_state(),
        "config": run.cfg.to_dict(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def batches_per_epoch(run: TrainingRun) -> int:
    bpe = EpochBatchSampler(
        len(run.pairs), run.cfg.batch_size, run.cfg.seed, world_size=run.world
    ).batches_per_epoch()
    if bpe == 0:
        raise ValueError(
            f"{len(run.pairs)} training pins cannot fill a batch of {run.cfg.batch_size}"
        )
    return bpe


def iterate_batches(run: TrainingRun) -> Iterator[PinBatch | FeatureBatch]:
    """Batches from `run.step` on, epoch after epoch, in the seeded order resume relies on."""
    cfg, bpe = run.cfg, batches_per_epoch(run)
    step = run.step
    while True:
        run.pairs.epoch = step // bpe
        sampler = EpochBatchSampler(
            len(run.pairs), cfg.batch_size, cfg.seed, run.pairs.epoch, step % bpe, run.rank,
            run.world,
        )  # fmt: skip
        if run.batcher is not None:
            for indices in sampler:
                yield run.batcher.batch(indices, step)
                step += 1
            continue
        loader = DataLoader(
            run.pairs,
            batch_sampler=sampler,
            collate_fn=run.pairs.collate,
            num_workers=cfg.num_workers,
            prefetch_factor=4 if cfg.num_workers > 0 else None,
        )
        for batch in loader:
            yield batch
            step += 1


def train_one_step(run: TrainingRun, batch: PinBatch | FeatureBatch) -> dict[str, float]:
    """Forward, backward, clip, optimiser and schedule step; returns the step's losses."""
    batch = batch.to(run.device)
    use_amp = run.cfg.amp and run.device.type == "cuda"
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=use_amp):
        parts = run.trainable(batch)
    loss = torch.stack(list(parts.values())).sum()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    grad_norm = nn.utils.clip_grad_norm_(run.objective.parameters(), run.cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    record = {"step": float(run.step), "loss": float(loss.item())}
    record.update({k: float(v.item()) for k, v in parts.items()})
    run.history.append(record)
    return {**record, "grad_norm": float(grad_norm)}


def guard_heads(run: TrainingRun) -> dict[str, Any] | None:
    """Keeps each guarded head at the mix of step-0 and trained weights that validates best."""
    index = run.validation.index
    if index is None:
        return None
    model = run.model
    if run.batcher is not None:
        features, rows = run.batcher.features, [run.feature_rows[p.pin_id] for p in index.pins]

        def embed() -> dict[str, np.ndarray]:
            return embed_cached(model, features, rows)
    else:
        dataset = read_dataset(run.cfg.data)

        def embed() -> dict[str, np.ndarray]:
            emb = embed_with_model(model, dataset, index.pins)
            model.train()
            return {"pin": emb.pin, "text": emb.text}

    device = run.device
    model.to("cpu")
    try:
        return guard_report(choose_heads(model, run.head_start, index, embed), index)
    finally:
        model.to(device)


def finish(run: TrainingRun, samples_per_s: float) -> Path:
    """Rank 0 guards the heads, writes OUT/model, train_config.json and train.json; every rank
    leaves the process group."""
    out = Path(run.cfg.out_dir)
    model_dir = out / MODEL_DIR
    if run.rank == 0:
        guard = guard_heads(run)
        run.model.save(model_dir)
        run.cfg.save(out / "train_config.json")
        report = {
            "steps": run.step,
            "samples_per_s": samples_per_s,
            "train_pins": len(run.split.train_pin_ids),
            "heldout_pins": run.split.heldout_pin_ids,
            "validation_pins": (
                []
                if run.validation.index is None
                else [run.validation.index.pins[i].pin_id for i in run.validation.index.query_rows]
            ),
            "guard": guard,
            "final_loss": run.history[-1]["loss"] if run.history else None,
            "history": run.history,
            "temperatures": {
                name: float(1.0 / mod.scale().item())
                for name, mod in run.objective.named_modules()
                if hasattr(mod, "logit_scale")
            },
        }
        (out / REPORT_FILE).write_text(json.dumps(report, indent=1))
        log.info(
            "train.done", steps=run.step, final_loss=report["final_loss"], samples_s=samples_per_s
        )
    if dist.is_initialized():
        dist.barrier()
        if run.joined_process_group:
            dist.destroy_process_group()
    return model_dir


def _log_start(run: TrainingRun) -> None:
    log.info(
        "train.start",
        pins=len(run.pairs),
        heldout=len(run.split.heldout_pin_ids),
        steps=run.cfg.steps,
        start_step=run.step,
        batch_size=run.cfg.batch_size,
        world_size=run.world,
        device=str(run.device),
        threads=torch.get_num_threads(),
        cached_features=run.batcher is not None,
        frozen_text_params=run.frozen_text_params,
        neighbor_weight=run.cfg.weights.neighbor,
    )


def train(cfg: TrainConfig, resume: bool = True, stop_at: int | None = None) -> TrainResult:
    """Train from `cfg.data` into `cfg.out_dir`; resumes from its checkpoint when present.

    `stop_at` ends the run early after checkpointing (a preemption), leaving the schedule as if
    the run went to `cfg.steps`, so a resumed run continues exactly where it stopped.
    """
    run = setup_run(cfg)
    if resume:
        resume_from_checkpoint(run)
    last = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
    _log_start(run)
    progress = Progress(cfg.steps, run.step, enabled=cfg.progress and run.rank == 0)
    run.objective.train()
    if run.step < last:
        for batch in iterate_batches(run):
            record = train_one_step(run, batch)
            progress.update(run.step, record, len(batch) * run.world)
            if run.rank == 0 and (run.step % cfg.checkpoint_every == 0 or run.step == last):
                save_checkpoint(run)
            if run.step >= last:
                break
    progress.close()
    model_dir = finish(run, progress.samples_per_s)
    return TrainResult(Path(cfg.out_dir), model_dir, run.step, run.history, progress.samples_per_s)
