"""Hybrid fusion: a small transformer over [fusion token, image patch tokens, text tokens].

This plays the "VLM backbone" role of the paper: image and text tokens attend to each other
and a learned fusion token gathers the pin-level representation. Plain pre-norm blocks with
an explicit additive mask (no nn.TransformerEncoder fast path) so the ONNX export is exactly
the eager computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encoder.config import FusionConfig


class FusionBlock(nn.Module):
    """Pre-norm self-attention + MLP; `attn_bias` is 0 for real tokens, -inf-ish for padding
    (None: every token is real, as in the image tower of `encoder.stem_vit`)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"fusion width {width} not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, tokens, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)
        attended = attended.transpose(1, 2).reshape(batch, tokens, width)
        x = x + self.dropout(self.out(attended))
        out: Tensor = x + self.dropout(self.mlp(self.norm2(x)))  # nn.Module calls are untyped
        return out


class HybridFusion(nn.Module):
    """Projects both towers' tokens to one width, tags modality, fuses; returns the fusion token."""

    def __init__(self, cfg: FusionConfig, vision_width: int, text_width: int) -> None:
        super().__init__()
        width = cfg.width
        self.image_proj = nn.Linear(vision_width, width)
        self.text_proj = nn.Linear(text_width, width)
        self.fusion_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        # 0: fusion token, 1: image patch, 2: text token.
        self.modality = nn.Parameter(torch.randn(3, width) * 0.02)
        self.blocks = nn.ModuleList(
            FusionBlock(width, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, image_tokens: Tensor, text_tokens: Tensor, text_mask: Tensor) -> Tensor:
        """image_tokens [B,P,Wv], text_tokens [B,L,Wt], text_mask [B,L] (1 = real) → [B,W]."""
        batch = image_tokens.shape[0]
        fusion = self.fusion_token.expand(batch, -1, -1) + self.modality[0]
        image = self.image_proj(image_tokens) + self.modality[1]
        text = self.text_proj(text_tokens) + self.modality[2]
        x = torch.cat([fusion, image, text], dim=1)
        keep = torch.cat(
            [
                torch.ones(batch, 1 + image.shape[1], dtype=torch.bool, device=x.device),
                text_mask.to(torch.bool),
            ],
            dim=1,
        )
        # Additive bias [B,1,1,T]: padding text tokens get a large negative score.
        attn_bias = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
        attn_bias = attn_bias.masked_fill(~keep, torch.finfo(x.dtype).min)[:, None, None, :]
        for block in self.blocks:
            x = block(x, attn_bias)
        pooled: Tensor = self.norm(x[:, 0])
        return pooled
