"""Model + losses as one module, so DDP sees exactly one forward per step.

Two batch kinds reach it: `PinBatch` (token ids; every tower runs) and `FeatureBatch` (the
frozen text tower's outputs come from the per-dataset cache; only trainable parts run).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from encoder.model import PinClipModel, PinClipOutput
from trainer.data import PinBatch
from trainer.feature_batches import FeatureBatch
from trainer.losses import LossWeights, MultiGranularLoss, NeighborAlignmentLoss


class PinClipObjective(nn.Module):
    def __init__(self, model: PinClipModel, weights: LossWeights, init_temperature: float) -> None:
        super().__init__()
        self.model = model
        self.multi_granular = MultiGranularLoss(weights, init_temperature)
        self.neighbor = NeighborAlignmentLoss(weights, init_temperature)

    def _anchors(self, batch: PinBatch | FeatureBatch) -> tuple[PinClipOutput, Tensor, Tensor]:
        """(pin outputs, title embedding, description embedding) of the anchors."""
        model = self.model
        if isinstance(batch, FeatureBatch):
            assert batch.text_tokens is not None and batch.text_mask is not None
            assert batch.title is not None and batch.description is not None
            image_tokens = model.image_tokens_from(batch.pixel_values)
            out = model.embed(image_tokens, batch.text_tokens, batch.text_mask)
            return (
                out,
                model.text_from_pooled(batch.title),
                model.text_from_pooled(batch.description),
            )
        out = model(batch.pixel_values, batch.input_ids, batch.attention_mask)
        # Titles and descriptions go through the text tower in one call (same padding).
        both = model.encode_text(
            torch.cat([batch.title_ids, batch.description_ids]),
            torch.cat([batch.title_mask, batch.description_mask]),
        )
        title, description = both.chunk(2)
        return out, title, description

    def _neighbors(self, batch: PinBatch | FeatureBatch) -> PinClipOutput | None:
        if batch.neighbor_pixel_values is None or not self.neighbor.weights.neighbor:
            return None
        if isinstance(batch, FeatureBatch):
            assert batch.neighbor_text_tokens is not None
            assert batch.neighbor_text_mask is not None
            tokens = self.model.image_tokens_from(batch.neighbor_pixel_values)
            return self.model.embed(tokens, batch.neighbor_text_tokens, batch.neighbor_text_mask)
        assert batch.neighbor_input_ids is not None and batch.neighbor_attention_mask is not None
        neighbors: PinClipOutput = self.model(
            batch.neighbor_pixel_values, batch.neighbor_input_ids, batch.neighbor_attention_mask
        )
        return neighbors

    def forward(self, batch: PinBatch | FeatureBatch) -> dict[str, Tensor]:
        out, title, description = self._anchors(batch)
        parts: dict[str, Tensor] = self.multi_granular(
            out.image, out.text, out.pin, title, description, batch.has_description
        )
        nbr = self._neighbors(batch)
        if nbr is not None:
            parts.update(
                self.neighbor(
                    out.pin,
                    nbr.image,
                    nbr.text,
                    nbr.pin,
                    batch.share_board,
                    batch.has_neighbor,
                    anchor_image=out.image,
                    anchor_text=out.text,
                )
            )
        return parts
