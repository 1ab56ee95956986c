"""Training configuration: one dataclass, saved as train_config.json beside every checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from encoder.config import FusionConfig, PinClipConfig, TextConfig, VisionConfig
from trainer.losses import LossWeights


def model_preset(name: str, image_size: int | None = None) -> PinClipConfig:
    """Named model sizes: `tiny` (tests, random towers), `small` (CPU benchmark, random text
    tower with the MiniLM tokenizer vocabulary), `minilm` (small ViT + pretrained MiniLM-L6),
    `default` (the encoder's serving default)."""
    if name == "tiny":
        cfg = PinClipConfig.tiny()
    elif name == "small":
        cfg = PinClipConfig(
            embed_dim=64,
            vision=VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=2),
            text=TextConfig(pretrained=None, max_length=48, width=64, layers=2, heads=2),
            fusion=FusionConfig(width=64, layers=1, heads=2),
        )
    elif name == "minilm":
        cfg = PinClipConfig(
            embed_dim=128,
            vision=VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=2),
            text=TextConfig(max_length=32),
            fusion=FusionConfig(width=64, layers=1, heads=2),
        )
    elif name == "default":
        cfg = PinClipConfig.default()
    else:
        raise ValueError(f"unknown model preset {name!r}")
    if image_size is not None:
        cfg.vision.image_size = image_size
    return cfg


@dataclass
class TrainConfig:
    data: str = ""
    out_dir: str = "var/train"
    model: str = "tiny"  # preset name (see model_preset) unless model_config is given
    model_config: dict[str, Any] | None = None  # a full PinClipConfig dict overrides `model`
    # Tokenizer for a randomly initialised text tower: None = the tower's own (a character
    # tokenizer), "minilm" = MiniLM's WordPiece vocabulary (words, not characters).
    tokenizer: str | None = None
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    text_lr_scale: float = 0.1  # pretrained text tower learns slower: keeps its semantics
    freeze_text_layers: int = 2  # embeddings + first N layers of a pretrained text tower
    weight_decay: float = 0.05
    warmup_steps: int = 20
    grad_clip: float = 1.0
    init_temperature: float = 0.07
    weights: LossWeights = field(default_factory=LossWeights)
    neighbor_sampler: str = "coboard"  # or "walk"
    heldout_fraction: float = 0.1
    split_seed: int = 0
    seed: int = 0
    num_workers: int = 1  # DataLoader workers: neighbor sampling + decoding off the train thread
    checkpoint_every: int = 100
    amp: bool = True  # bf16 autocast, used on CUDA only
    # torch intra-op threads on CPU. 1 by default: with a DataLoader worker beside it, a second
    # OpenMP thread gains ~10% on an idle 2-core machine but makes every op ~10x slower the
    # moment another process wants a core (measured, docs/BENCHMARKS.md).
    threads: int = 1
    progress: bool = True

    def tokenizer_json(self) -> str | None:
        if self.tokenizer is None:
            return None
        if self.tokenizer == "minilm":
            from encoder.config import MINILM_L6
            from encoder.tokenizer import tokenizer_json_for

            return tokenizer_json_for(MINILM_L6)
        return Path(self.tokenizer).read_text()  # a tokenizer.json path

    def pinclip_config(self) -> PinClipConfig:
        if self.model_config is not None:
            return PinClipConfig.from_dict(self.model_config)
        return model_preset(self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("weights"), dict):
            values["weights"] = LossWeights(**values["weights"])
        return cls(**values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
