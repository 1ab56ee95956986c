"""MobileNetV2 (Sandler et al. 2018) as the stem's feature extractor: torchvision's network.

torchvision builds the architecture (`weights=None`: it would download from a host these
machines cannot reach); the published ImageNet weights come from `encoder.weights`, verified,
and load with `strict=True` into `features`, the same module names torchvision saved them under.

Block i of `features`: 0 is a stride-2 3×3 conv; 1–17 are inverted residuals
(1×1 expand → 3×3 depthwise → 1×1 linear project); 18 is the 1×1 conv to 1280 channels. At
224 px the last map is 7 × 7.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import mobilenet_v2

BOTTLENECK_CHANNELS = 320  # output of block 17: the last map before the 1280 expansion
LAST_CHANNELS = 1280


class MobileNetV2Features(nn.Module):
    """`features` of MobileNetV2 (width 1.0); `bottleneck(x)` stops before block 18."""

    def __init__(self) -> None:
        super().__init__()
        self.features: nn.Sequential = mobilenet_v2(weights=None).features

    def bottleneck(self, pixel_values: Tensor) -> Tensor:
        """[B,3,S,S] (ImageNet-normalised) → [B,320,S/32,S/32]."""
        out: Tensor = self.features[:-1](pixel_values)
        return out

    def expand(self, bottleneck: Tensor) -> Tensor:
        """Block 18: [B,320,h,w] → [B,1280,h,w] (the map torchvision's classifier pools)."""
        out: Tensor = self.features[-1](bottleneck)
        return out

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.expand(self.bottleneck(pixel_values))
