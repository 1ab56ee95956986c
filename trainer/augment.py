"""Image augmentation for a tower learning from a few thousand images: one batched affine warp.

Each image gets a random zoom (crop of 70–100% of the side), a shift within the room the zoom
leaves, and a horizontal flip half the time; pixels beyond the border repeat the edge (white
for icons and clip art). Colours are left alone: they are part of what a pin is. Done on the
already-normalised float tensors with `affine_grid`/`grid_sample`, so it costs one small op per
batch instead of per-image PIL work, and is seeded by the caller's generator (exact resume).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_SCALE = 0.7


def augment(pixels: Tensor, generator: torch.Generator, min_scale: float = MIN_SCALE) -> Tensor:
    """[B,3,S,S] → same shape, randomly zoomed, shifted and flipped."""
    batch = pixels.shape[0]
    scale = min_scale + (1 - min_scale) * torch.rand(batch, generator=generator)
    room = 1 - scale
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * room[:, None]
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    out = F.grid_sample(
        pixels.float(), grid.to(pixels.device), padding_mode="border", align_corners=False
    )
    return out
