"""Training batches from per-dataset feature caches (`trainer.features`): no decoding and no
frozen-tower forward pass per step, just indexing, neighbor sampling and augmentation.

Same anchors, neighbors and false-negative masks as `trainer.data.PinPairDataset` (it is reused
for neighbor sampling), so the cached and the live path train the same objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.augment import augment
from trainer.data import PinPairDataset, tensors_to
from trainer.features import PinFeatures
from trainer.losses import share_board_mask


@dataclass
class FeatureBatch:
    """`pixel_values`: images [B,3,S,S], or for a feature-bank tower its cached bank [B,D]."""

    pixel_values: Tensor
    text_tokens: Tensor | None  # None: the text tower runs live (it is being trained)
    text_mask: Tensor | None
    title: Tensor | None
    description: Tensor | None
    has_description: Tensor | None
    neighbor_pixel_values: Tensor | None = None
    neighbor_text_tokens: Tensor | None = None
    neighbor_text_mask: Tensor | None = None
    has_neighbor: Tensor | None = None
    share_board: Tensor | None = None

    def to(self, device: torch.device) -> FeatureBatch:
        return FeatureBatch(**tensors_to(self, device))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.pixel_values.shape[0])


class FeatureBatcher:
    """Index lists → FeatureBatch. Augmentation is seeded per step (exact resume)."""

    def __init__(
        self, pairs: PinPairDataset, features: PinFeatures, augment_images: bool, seed: int
    ) -> None:
        self.pairs = pairs
        self.features = features
        self.augment_images = augment_images
        self.seed = seed

    def _pixels(self, rows: Sequence[int], generator: torch.Generator) -> Tensor:
        if self.features.pixels.dim() == 3:  # feature-bank views [V, N, D]: pick one a row
            views = self.features.pixels.shape[0]
            view = torch.randint(views, (len(rows),), generator=generator)
            if not self.augment_images:
                view = torch.zeros_like(view)
            return self.features.pixels[view, torch.tensor(list(rows))].float()
        pixels = self.features.pixels[list(rows)].float()
        return augment(pixels, generator) if self.augment_images else pixels

    def _text(self, rows: Sequence[int]) -> tuple[Tensor | None, Tensor | None]:
        f = self.features
        if f.text_tokens is None or f.text_mask is None:
            return None, None
        mask = f.text_mask[list(rows)]
        length = max(1, int(mask.sum(1).max()))
        return f.text_tokens[list(rows), :length].float(), mask[:, :length]

    def batch(self, indices: Sequence[int], step: int) -> FeatureBatch:
        items = [self.pairs[i] for i in indices]
        anchors = [a for a, _ in items]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        f = self.features
        tokens, mask = self._text(anchors)
        out = FeatureBatch(
            pixel_values=self._pixels(anchors, generator),
            text_tokens=tokens,
            text_mask=mask,
            title=None if f.title is None else f.title[anchors],
            description=None if f.description is None else f.description[anchors],
            has_description=None if f.has_description is None else f.has_description[anchors],
        )
        if not self.pairs.with_neighbors:
            return out
        neighbors = [a if n is None else n for a, n in items]
        out.neighbor_pixel_values = self._pixels(neighbors, generator)
        out.neighbor_text_tokens, out.neighbor_text_mask = self._text(neighbors)
        out.has_neighbor = torch.tensor([n is not None for _, n in items])
        graph, pins = self.pairs.graph, self.pairs.pins
        out.share_board = share_board_mask(
            [graph.board_set(pins[a].pin_id) for a in anchors],
            [graph.board_set(pins[n].pin_id) for n in neighbors],
        )
        return out
