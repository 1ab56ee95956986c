"""Optimiser set-up: what is frozen, which parameters learn slower, the lr schedule."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import nn

from encoder.model import PinClipModel
from trainer.config import TrainConfig


def warmup_cosine(warmup: int, total: int, floor: float = 0.05) -> Callable[[int], float]:
    """lr multiplier: linear warmup to 1, then cosine down to `floor`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def freeze_text_layers(model: PinClipModel, n_layers: int) -> int:
    """Freeze embeddings and the first n layers of a pretrained (BERT-like) text tower; with
    n ≥ its depth the whole tower is frozen (and the trainer caches its outputs per pin)."""
    if model.config.text.pretrained is None or n_layers <= 0:
        return 0
    tower = model.text
    layers = list(getattr(getattr(tower, "encoder", None), "layer", []))
    modules: list[nn.Module | None] = [getattr(tower, "embeddings", None), *layers[:n_layers]]
    if n_layers >= len(layers):
        modules = [tower]
    frozen = 0
    for module in modules:
        if module is None:
            continue
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def build_optimizer(
    objective: nn.Module, model: PinClipModel, cfg: TrainConfig
) -> torch.optim.AdamW:
    """Groups: pretrained towers (lower lr), temperatures/biases/norms (no decay), the rest."""
    slow: dict[int, float] = {}
    if model.config.text.pretrained is not None:
        slow.update({id(p): cfg.text_lr_scale for p in model.text.parameters()})
    if model.config.vision.pretrained_path:
        slow.update({id(p): cfg.vision_lr_scale for p in model.vision.parameters()})
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in objective.named_parameters():
        if not p.requires_grad:
            continue
        decay = not (name.endswith("logit_scale") or p.ndim < 2)
        groups.setdefault((slow.get(id(p), 1.0), decay), []).append(p)
    return torch.optim.AdamW(
        [
            {"params": params, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay * decay}
            for (scale, decay), params in sorted(groups.items())
        ],
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def choose_threads(requested: int) -> int:
    """`requested` torch threads, or with 0 the cores not already busy (1-minute load average).

    On a shared machine a second OpenMP thread waiting for a busy core made every op ~10×
    slower (docs/BENCHMARKS.md), so only idle cores are taken.
    """
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))
