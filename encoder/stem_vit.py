"""The hybrid ViT on a pretrained stem: a frozen ImageNet CNN makes the tokens, a small
transformer trained with the PinCLIP objectives mixes them.

PinCLIP's image tower is a hybrid ViT (a convolutional stem feeding transformer layers). Trained
from scratch on a few thousand images on a CPU, no stem learns features worth having (measured:
docs/BENCHMARKS.md), so the stem here is MobileNetV2 with its published ImageNet weights
(`encoder.mobilenet`, fetched and verified by `encoder.weights`), frozen:

    b = MobileNetV2[0:18](x)            [B,320,h,w]   the pretrained bottleneck (h = w = S/32)
    p = mean_hw MobileNetV2[18](b)       [B,1280]      the pooled vector ImageNet's head reads
    z_0 = MLP(LN(p))                     the summary token
    z_i = W·LN(b_i) + pos_i              one token per cell of the 7×7 map (224 px)
    z = Transformer(z_0, z_1..z_hw)      `layers` pre-norm blocks; output token 0 = the image

The frozen part (`bank`: b flattened, then p) is what the trainer caches per image and view;
the trained part (`tokens`) is small, so a CPU step stays cheap. Everything is convolution,
matrix products and softmax: the whole tower, stem included, exports to ONNX.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor, nn

from encoder.bank_tower import BankTower
from encoder.config import VisionConfig
from encoder.fusion import FusionBlock
from encoder.mobilenet import BOTTLENECK_CHANNELS, LAST_CHANNELS, MobileNetV2Features
from encoder.weights import weight_path

STRIDE = 32  # MobileNetV2's output stride
BACKBONES = ("mobilenet_v2",)


class PretrainedStemTower(BankTower):
    """Frozen MobileNetV2 stem → (1 + h·w) tokens → `cfg.layers` trained transformer blocks."""

    split_independent = True

    def __init__(self, cfg: VisionConfig, load_weights: bool = True) -> None:
        """`load_weights=False` builds the architecture only (a saved model's own weights
        follow); otherwise the pinned ImageNet weights are fetched/verified and loaded, or
        `encoder.weights.WeightsUnavailable` says why not."""
        super().__init__()
        if cfg.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {cfg.backbone!r}; known: {', '.join(BACKBONES)}")
        if cfg.image_size % STRIDE:
            raise ValueError(f"image_size must be a multiple of {STRIDE}, not {cfg.image_size}")
        self.width = cfg.width
        self.grid = cfg.image_size // STRIDE
        self.stem = MobileNetV2Features()
        if load_weights:
            self.stem.load_state_dict(_imagenet_features(cfg.backbone), strict=True)
        self.stem.requires_grad_(False)
        self.stem.eval()
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.summary_in = nn.Sequential(
            nn.LayerNorm(LAST_CHANNELS),
            nn.Dropout(cfg.bank_dropout),
            nn.Linear(LAST_CHANNELS, hidden),
            nn.GELU(),
            nn.Linear(hidden, cfg.width),
        )
        self.token_in = nn.Sequential(
            nn.LayerNorm(BOTTLENECK_CHANNELS), nn.Linear(BOTTLENECK_CHANNELS, cfg.width)
        )
        self.position = nn.Parameter(torch.randn(1, self.grid**2, cfg.width) * 0.02)
        block = (cfg.width, cfg.heads, cfg.mlp_ratio, cfg.bank_dropout)
        self.blocks = nn.ModuleList(FusionBlock(*block) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)

    def train(self, mode: bool = True) -> PretrainedStemTower:
        """The stem stays in eval mode: its BatchNorm statistics are ImageNet's, not a batch's."""
        super().train(mode)
        self.stem.eval()
        return self

    @property
    def bank_dim(self) -> int:
        return self.grid**2 * BOTTLENECK_CHANNELS + LAST_CHANNELS

    def bank(self, pixel_values: Tensor) -> Tensor:
        """The frozen part: [B, h·w·320 + 1280] = bottleneck tokens, then the pooled vector."""
        with torch.no_grad():
            bottleneck = self.stem.bottleneck(pixel_values)
            pooled = self.stem.expand(bottleneck).mean((2, 3))
        tokens = bottleneck.flatten(2).transpose(1, 2).flatten(1)
        return torch.cat([tokens, pooled], 1)

    def tokens(self, bank: Tensor) -> SimpleNamespace:
        cells = self.grid**2
        split = cells * BOTTLENECK_CHANNELS
        grid = bank[:, :split].reshape(bank.shape[0], cells, BOTTLENECK_CHANNELS)
        summary = self.summary_in(bank[:, split:]).unsqueeze(1)
        x = torch.cat([summary, self.token_in(grid) + self.position], 1)
        for block in self.blocks:
            x = block(x)
        return SimpleNamespace(last_hidden_state=self.norm(x))


def _imagenet_features(backbone: str) -> dict[str, Tensor]:
    """The `features.*` tensors of the verified torchvision checkpoint (the classifier goes)."""
    state = torch.load(weight_path(backbone), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("features.")}
