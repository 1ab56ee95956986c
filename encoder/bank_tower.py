"""The seam between an image tower's fixed part and its trained part.

Some towers start with a part that never trains: fixed feature banks fitted once to the data
(`encoder.image_features`), or a frozen pretrained CNN stem (`encoder.stem_vit`). The trainer
runs that part once per image (and per augmented view) and caches its output, so a training step
costs only the trained part; serving runs both, through the same `forward`, so the two can
never disagree.
"""

from __future__ import annotations

from types import SimpleNamespace

from torch import Tensor, nn


class BankTower(nn.Module):
    """`bank(pixel_values)` [B,3,S,S] → [B,D] is fixed; `tokens(bank)` → last_hidden_state
    [B,T,width] is trained, token 0 being the summary (the CLS role)."""

    width: int
    # True when `bank` depends on nothing fitted to a training split (a frozen pretrained stem):
    # the trainer then computes it once per dataset and shares it across seeds and ablations.
    split_independent: bool = False

    def bank(self, pixel_values: Tensor) -> Tensor:
        raise NotImplementedError

    def tokens(self, bank: Tensor) -> SimpleNamespace:
        raise NotImplementedError

    def forward(self, pixel_values: Tensor) -> SimpleNamespace:
        return self.tokens(self.bank(pixel_values))

    def fit(self, pixel_values: Tensor, seed: int = 0) -> None:
        """Fit whatever the fixed part learns from training images (nothing by default)."""

    def is_fitted(self) -> bool:
        return True
