"""Training objectives: multi-granular image–text alignment and neighbor alignment.

All inputs are L2-normalised embeddings of shape [B, D]. Each loss is a small module holding its
own learnable temperature, in the style of OpenCLIP's ``ClipLoss``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with a learnable temperature (CLIP).

    With s = exp(logit_scale) (clamped to ``max_scale``) and logits Z = s · A Bᵀ,

        L = ½ [ CE(Z, I) + CE(Zᵀ, I) ]

    where row i's positive is column i. ``exclude`` (bool [B, B]) removes known false negatives
    from the softmax denominators (Z_ij = -inf); the diagonal is never excluded.
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.max_scale = max_scale

    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=self.max_scale)

    def forward(self, a: Tensor, b: Tensor, exclude: Tensor | None = None) -> Tensor:
        logits = self.scale() * a @ b.t()
        if exclude is not None:
            eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(exclude & ~eye, float("-inf"))
        labels = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


@dataclass
class LossWeights:
    """Weights of each term; ``neighbor = 0`` is the ablation without neighbor alignment."""

    image_title: float = 1.0
    image_description: float = 0.5
    pin_image: float = 0.5
    pin_text: float = 0.5
    neighbor: float = 1.0  # multiplies the three neighbor terms below
    neighbor_pin: float = 1.0
    neighbor_image: float = 0.5
    neighbor_text: float = 0.5
    # Same-granularity terms: image(p)↔image(n) and text(p)↔text(n). They teach the image and
    # text heads the graph too, so each head retrieves on its own (an image-only query).
    neighbor_image_image: float = 0.0
    neighbor_text_text: float = 0.0


class MultiGranularLoss(nn.Module):
    """Image–text alignment at several granularities.

        L_mg = w_it · NCE(image, title) + w_id · NCE(image, description)
             + w_pi · NCE(pin, image)   + w_pt · NCE(pin, text)

    Title and description are encoded separately so each carries its own alignment signal;
    ``text`` is title + description. Pairs whose description is empty are left out of w_id.
    """

    def __init__(self, weights: LossWeights, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.weights = weights
        self.image_title = InfoNCELoss(init_temperature)
        self.image_description = InfoNCELoss(init_temperature)
        self.pin_image = InfoNCELoss(init_temperature)
        self.pin_text = InfoNCELoss(init_temperature)

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        pin: Tensor,
        title: Tensor,
        description: Tensor,
        has_description: Tensor | None = None,
    ) -> dict[str, Tensor]:
        w = self.weights
        parts: dict[str, Tensor] = {}
        if w.image_title:
            parts["image_title"] = w.image_title * self.image_title(image, title)
        if w.image_description:
            keep = has_description if has_description is not None else None
            if keep is None:
                parts["image_description"] = w.image_description * self.image_description(
                    image, description
                )
            elif int(keep.sum()) >= 2:
                parts["image_description"] = w.image_description * self.image_description(
                    image[keep], description[keep]
                )
        if w.pin_image:
            parts["pin_image"] = w.pin_image * self.pin_image(pin, image)
        if w.pin_text:
            parts["pin_text"] = w.pin_text * self.pin_text(pin, text)
        return parts


class NeighborAlignmentLoss(nn.Module):
    """Pull a pin towards the cross-modal views of a graph neighbor.

    For anchors p_i and their sampled neighbors n_i (co-board or random-walk),

        L_nbr = w · [ w_p · NCE(pin(p), pin(n)) + w_v · NCE(pin(p), image(n))
                    + w_t · NCE(pin(p), text(n))
                    + w_vv · NCE(image(p), image(n)) + w_tt · NCE(text(p), text(n)) ]

    with in-batch negatives n_j (j ≠ i). A negative n_j that shares a board with p_i is a false
    negative — the graph says they belong together — so it is excluded from the softmax
    (``share_board[i, j] = True``).
    """

    def __init__(self, weights: LossWeights, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.weights = weights
        self.to_pin = InfoNCELoss(init_temperature)
        self.to_image = InfoNCELoss(init_temperature)
        self.to_text = InfoNCELoss(init_temperature)
        self.image_image = InfoNCELoss(init_temperature)
        self.text_text = InfoNCELoss(init_temperature)

    def forward(
        self,
        anchor_pin: Tensor,
        neighbor_image: Tensor,
        neighbor_text: Tensor,
        neighbor_pin: Tensor,
        share_board: Tensor | None = None,
        has_neighbor: Tensor | None = None,
        anchor_image: Tensor | None = None,
        anchor_text: Tensor | None = None,
    ) -> dict[str, Tensor]:
        w = self.weights
        if not w.neighbor:
            return {}
        if has_neighbor is not None:
            if int(has_neighbor.sum()) < 2:
                return {}
            keep = has_neighbor
            anchor_pin, neighbor_image = anchor_pin[keep], neighbor_image[keep]
            neighbor_text, neighbor_pin = neighbor_text[keep], neighbor_pin[keep]
            anchor_image = None if anchor_image is None else anchor_image[keep]
            anchor_text = None if anchor_text is None else anchor_text[keep]
            if share_board is not None:
                share_board = share_board[keep][:, keep]
        parts: dict[str, Tensor] = {}
        if w.neighbor_pin:
            parts["nbr_pin"] = (
                w.neighbor * w.neighbor_pin * self.to_pin(anchor_pin, neighbor_pin, share_board)
            )
        if w.neighbor_image:
            parts["nbr_image"] = (
                w.neighbor
                * w.neighbor_image
                * self.to_image(anchor_pin, neighbor_image, share_board)
            )
        if w.neighbor_text:
            parts["nbr_text"] = (
                w.neighbor * w.neighbor_text * self.to_text(anchor_pin, neighbor_text, share_board)
            )
        if w.neighbor_image_image and anchor_image is not None:
            parts["nbr_image_image"] = (
                w.neighbor
                * w.neighbor_image_image
                * self.image_image(anchor_image, neighbor_image, share_board)
            )
        if w.neighbor_text_text and anchor_text is not None:
            parts["nbr_text_text"] = (
                w.neighbor
                * w.neighbor_text_text
                * self.text_text(anchor_text, neighbor_text, share_board)
            )
        return parts


def share_board_mask(anchor_boards: list[set[str]], neighbor_boards: list[set[str]]) -> Tensor:
    """mask[i, j] = anchor i and neighbor j share at least one board (bool [B, B])."""
    n = len(anchor_boards)
    mask = torch.zeros((n, len(neighbor_boards)), dtype=torch.bool)
    for i, mine in enumerate(anchor_boards):
        if not mine:
            continue
        for j, theirs in enumerate(neighbor_boards):
            if mine & theirs:
                mask[i, j] = True
    return mask
