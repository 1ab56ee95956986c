"""The training loop: AdamW, warmup + cosine, clipping, bf16 AMP on CUDA, checkpoint/resume, DDP.

Launch single-process (`pinclip train`) or with torchrun: when torchrun's RANK/WORLD_SIZE are in
the environment the loop joins a process group (nccl on CUDA, gloo on CPU) and wraps the model
in DistributedDataParallel. In-batch negatives stay per rank (no cross-rank gather): simple and
correct, at the cost of fewer negatives per anchor than one big batch.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from encoder.model import PinClipModel
from trainer.config import TrainConfig
from trainer.data import EpochBatchSampler, PinBatch, PinPairDataset
from trainer.dataset import read_dataset
from trainer.losses import LossWeights, MultiGranularLoss, NeighborAlignmentLoss
from trainer.neighbors import PinBoardGraph
from trainer.progress import progress_bar
from trainer.split import cold_start_split

log = structlog.get_logger("trainer")

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "train_state.pt"
MODEL_DIR = "model"
REPORT_FILE = "train.json"


class PinClipObjective(nn.Module):
    """Model + losses as one module, so DDP sees exactly one forward per step."""

    def __init__(self, model: PinClipModel, weights: LossWeights, init_temperature: float) -> None:
        super().__init__()
        self.model = model
        self.multi_granular = MultiGranularLoss(weights, init_temperature)
        self.neighbor = NeighborAlignmentLoss(weights, init_temperature)

    def forward(self, batch: PinBatch) -> dict[str, Tensor]:
        out = self.model(batch.pixel_values, batch.input_ids, batch.attention_mask)
        # Titles and descriptions go through the text tower in one call (same padding).
        both = self.model.encode_text(
            torch.cat([batch.title_ids, batch.description_ids]),
            torch.cat([batch.title_mask, batch.description_mask]),
        )
        title, description = both.chunk(2)
        parts = self.multi_granular(
            out.image, out.text, out.pin, title, description, batch.has_description
        )
        if batch.neighbor_pixel_values is not None and self.neighbor.weights.neighbor:
            assert batch.neighbor_input_ids is not None
            assert batch.neighbor_attention_mask is not None
            nbr = self.model(
                batch.neighbor_pixel_values, batch.neighbor_input_ids, batch.neighbor_attention_mask
            )
            parts.update(
                self.neighbor(
                    out.pin, nbr.image, nbr.text, nbr.pin, batch.share_board, batch.has_neighbor
                )
            )
        return parts


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    samples_per_s: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def warmup_cosine(warmup: int, total: int, floor: float = 0.05) -> Any:
    """lr multiplier: linear warmup to 1, then cosine down to `floor`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def freeze_text_layers(model: PinClipModel, n_layers: int) -> int:
    """Freeze embeddings and the first n layers of a pretrained (BERT-like) text tower."""
    if model.config.text.pretrained is None or n_layers <= 0:
        return 0
    frozen = 0
    tower = model.text
    embeddings = getattr(tower, "embeddings", None)
    layers = getattr(getattr(tower, "encoder", None), "layer", [])
    for module in [embeddings, *list(layers)[:n_layers]]:
        if module is None:
            continue
        for p in module.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def build_optimizer(objective: PinClipObjective, cfg: TrainConfig) -> torch.optim.AdamW:
    """Three groups: pretrained text tower (lower lr), temperatures (no decay), the rest."""
    model = objective.model
    pretrained_text = model.config.text.pretrained is not None
    text_ids = {id(p) for p in model.text.parameters()} if pretrained_text else set()
    text, no_decay, rest = [], [], []
    for name, p in objective.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in text_ids:
            text.append(p)
        elif name.endswith("logit_scale") or p.ndim < 2:
            no_decay.append(p)
        else:
            rest.append(p)
    groups = [
        {"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
    ]
    if text:
        groups.append(
            {"params": text, "lr": cfg.lr * cfg.text_lr_scale, "weight_decay": cfg.weight_decay}
        )
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)


def _distributed() -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, joined_here); joins the process group under torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0, False
    joined = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        joined = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), joined


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, resume: bool = True, stop_at: int | None = None) -> TrainResult:
    """Train from `cfg.data` into `cfg.out_dir`; resumes from its checkpoint when present.

    `stop_at` ends the run early after checkpointing (a preemption), leaving the schedule as if
    the run went to `cfg.steps`, so a resumed run continues exactly where it stopped.
    """
    rank, world, local_rank, joined = _distributed()
    last = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
    out = Path(cfg.out_dir)
    ckpt_dir = out / CHECKPOINT_DIR
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, cfg.threads))
    seed_everything(cfg.seed + rank)

    dataset = read_dataset(cfg.data)
    split = cold_start_split(dataset, cfg.heldout_fraction, cfg.split_seed)
    graph = PinBoardGraph(split.train_saves)
    model = PinClipModel(cfg.pinclip_config(), cfg.tokenizer_json())
    frozen = freeze_text_layers(model, cfg.freeze_text_layers)
    pairs = PinPairDataset.from_dataset(
        dataset,
        split.train_pin_ids,
        graph,
        image_pre=model.image_preprocessor(),
        text_pre=model.text_preprocessor(),
        sampler=cfg.neighbor_sampler,
        with_neighbors=cfg.weights.neighbor > 0,
        seed=cfg.seed,
    )
    objective = PinClipObjective(model, cfg.weights, cfg.init_temperature).to(device)
    optimizer = build_optimizer(objective, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.warmup_steps, cfg.steps)
    )
    step = 0
    history: list[dict[str, float]] = []
    state_path = ckpt_dir / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history = int(state["step"]), list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed", step=step, checkpoint=str(state_path))
    trainable: nn.Module = objective
    if world > 1 or dist.is_initialized():
        trainable = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[local_rank] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    use_amp = cfg.amp and device.type == "cuda"
    bpe = EpochBatchSampler(
        len(pairs), cfg.batch_size, cfg.seed, world_size=world
    ).batches_per_epoch()
    if bpe == 0:
        raise ValueError(f"{len(pairs)} training pins cannot fill a batch of {cfg.batch_size}")
    log.info(
        "train.start",
        pins=len(pairs),
        heldout=len(split.heldout_pin_ids),
        steps=cfg.steps,
        start_step=step,
        batch_size=cfg.batch_size,
        world_size=world,
        device=str(device),
        frozen_text_params=frozen,
        neighbor_weight=cfg.weights.neighbor,
    )
    bar = progress_bar(
        cfg.steps, desc="train", initial=step, unit="step", enabled=cfg.progress and rank == 0
    )
    objective.train()
    t0, seen = time.perf_counter(), 0
    rate = 0.0
    while step < last:
        pairs.epoch = step // bpe
        sampler = EpochBatchSampler(
            len(pairs), cfg.batch_size, cfg.seed, pairs.epoch, step % bpe, rank, world
        )
        loader = DataLoader(
            pairs,
            batch_sampler=sampler,
            collate_fn=pairs.collate,
            num_workers=cfg.num_workers,
            prefetch_factor=4 if cfg.num_workers > 0 else None,
        )
        for batch in loader:
            batch = batch.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                parts = trainable(batch)
            loss = torch.stack(list(parts.values())).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(batch) * world
            rate = seen / max(1e-9, time.perf_counter() - t0)
            record = {"step": float(step), "loss": float(loss.item())}
            record.update({k: float(v.item()) for k, v in parts.items()})
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{rate:.0f}")
            if step % 10 == 0 or step == cfg.steps:
                log.debug("train.step", **record, grad_norm=float(grad_norm), samples_s=rate)
            if rank == 0 and (step % cfg.checkpoint_every == 0 or step == last):
                _atomic_save(
                    {
                        "objective": objective.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                        "history": history,
                        "torch_rng": torch.get_rng_state(),
                        "config": cfg.to_dict(),
                    },
                    state_path,
                )
            if step >= last:
                break
    bar.close()
    model_dir = out / MODEL_DIR
    if rank == 0:
        model.save(model_dir)
        cfg.save(out / "train_config.json")
        report = {
            "steps": step,
            "samples_per_s": rate,
            "train_pins": len(split.train_pin_ids),
            "heldout_pins": split.heldout_pin_ids,
            "final_loss": history[-1]["loss"] if history else None,
            "history": history,
            "temperatures": {
                name: float(1.0 / mod.scale().item())
                for name, mod in objective.named_modules()
                if hasattr(mod, "logit_scale")
            },
        }
        (out / REPORT_FILE).write_text(json.dumps(report, indent=1))
        log.info("train.done", steps=step, final_loss=report["final_loss"], samples_s=rate)
    if dist.is_initialized():
        dist.barrier()
        if joined:
            dist.destroy_process_group()
    return TrainResult(out, model_dir, step, history, rate)
