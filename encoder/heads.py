"""Residual heads: start from what the pretrained towers know, learn only what they lack.

A plain linear head on a pretrained text tower has to *relearn* the tower's geometry, and
image–text training alone pulls it away (measured: the trained text head fell below frozen
MiniLM). Here every head is `skip(x) + mlp(x)` with the MLP's last layer at zero, so at step 0:

    text = norm(S·t̄)            pin = norm(S·t̄)            (S: the same isometry)

which ranks exactly like mean-pooled MiniLM when S preserves inner products (embed_dim ≥ text
width: an orthogonal S with orthonormal columns). Training then adds image, fusion and graph
signal on top; it never has to rediscover the text semantics.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _mlp(width: int, hidden: int, dim: int) -> nn.Sequential:
    mlp = nn.Sequential(
        nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, dim)
    )
    out: nn.Linear = mlp[-1]  # type: ignore[assignment]
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return mlp


class ResidualHead(nn.Module):
    """y = S·x + MLP(x); S orthogonal (an isometry when dim ≥ width), MLP output zero at init."""

    def __init__(self, width: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.skip = nn.Linear(width, dim, bias=False)
        nn.init.orthogonal_(self.skip.weight)
        self.mlp = _mlp(width, hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.mlp(x)  # type: ignore[no-any-return]


class PinHead(nn.Module):
    """pin = P_t·t̄ + P_v·v + P_f·f + MLP([t̄; v]); only P_t is non-zero at init.

    t̄: pooled text tokens, v: the image token (CLS), f: the fusion token. The MLP over both
    modalities mixes them non-linearly at the cost of one small matmul; the fusion transformer
    does so token by token.
    """

    def __init__(
        self, text_width: int, vision_width: int, fusion_width: int, dim: int, hidden: int
    ):
        super().__init__()
        self.from_text = nn.Linear(text_width, dim, bias=False)
        nn.init.orthogonal_(self.from_text.weight)
        self.from_image = nn.Linear(vision_width, dim, bias=False)
        self.from_fusion = nn.Linear(fusion_width, dim, bias=False)
        nn.init.zeros_(self.from_image.weight)
        nn.init.zeros_(self.from_fusion.weight)
        self.mlp = _mlp(text_width + vision_width, hidden, dim)

    @torch.no_grad()
    def start_as(self, text_head: ResidualHead) -> None:
        """Same text skip as the text head: pin == text until training says otherwise."""
        self.from_text.weight.copy_(text_head.skip.weight)

    def forward(self, pooled_text: Tensor, image_token: Tensor, fused: Tensor) -> Tensor:
        both = torch.cat([pooled_text, image_token], dim=-1)
        return (  # type: ignore[no-any-return]
            self.from_text(pooled_text)
            + self.from_image(image_token)
            + self.from_fusion(fused)
            + self.mlp(both)
        )
