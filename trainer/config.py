"""Training configuration: one dataclass, saved as train_config.json beside every checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from encoder.config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FusionConfig,
    HeadConfig,
    PinClipConfig,
    TextConfig,
    VisionConfig,
)
from trainer.losses import LossWeights

RECOMMENDED = "stem"
PRESETS = ("tiny", "small", "minilm", "stem", "default")


def model_preset(name: str, image_size: int | None = None) -> PinClipConfig:
    """Named model sizes: `tiny` (tests, random towers), `small` (random text tower with the
    MiniLM tokenizer vocabulary), `minilm` (**recommended**: feature-bank image tower at 64 px +
    frozen pretrained MiniLM-L6 + residual heads, D = 384), `default` (the encoder's serving
    default: a bigger ViT for a GPU)."""
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
        # D = 384 = MiniLM's width, so the residual heads start as an exact isometry of it.
        # The image tower is the feature-bank tower: fixed colour/edge/k-means banks fitted to
        # the dataset and whitened, then a trained MLP (encoder/image_features.py).
        cfg = PinClipConfig(
            embed_dim=384,
            vision=VisionConfig(image_size=64, width=256, mlp_ratio=4.0, kind="features"),
            text=TextConfig(max_length=64),
            fusion=FusionConfig(width=128, layers=1, heads=4),
            heads=HeadConfig(residual=True, mlp_hidden=512),
        )
    elif name == "stem":
        # The hybrid ViT on a frozen ImageNet MobileNetV2 (encoder/stem_vit.py): 7×7 tokens at
        # 224 px + the pooled vector, one trained transformer block; text and heads as `minilm`.
        cfg = PinClipConfig(
            embed_dim=384,
            vision=VisionConfig(
                image_size=224,
                width=128,
                layers=1,
                heads=4,
                mlp_ratio=4.0,
                kind="stem",
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
            ),
            text=TextConfig(max_length=64),
            fusion=FusionConfig(width=128, layers=1, heads=4),
            heads=HeadConfig(residual=True, mlp_hidden=512),
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
    # Embeddings + first N layers of a pretrained text tower; N >= its depth freezes it all, and
    # then its outputs are computed once per dataset instead of every step (trainer.features).
    freeze_text_layers: int = 2
    vision_lr_scale: float = 0.1  # a pretrained vision checkpoint (--vision-checkpoint) too
    augment: bool = False  # random zoom/shift/flip of training images (trainer.augment)
    # Where per-dataset feature caches go ("" = keep them in memory only).
    feature_cache: str = ""
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
    threads: int = 0  # 0 = the cores not busy right now (trainer.optim.choose_threads)
    progress: bool = True
    # Guard (trainer.guard): this share of the training pins' saves is held out, whole groups
    # at a time, as a cold-start validation set; after training the text and pin heads are
    # interpolated between their step-0 weights (== frozen MiniLM) and the trained ones at the
    # mix that retrieves best there. 0 disables it.
    validation_fraction: float = 0.0
    vision_checkpoint: str | None = None  # a local HF vision checkpoint replaces the ViT

    @classmethod
    def preset(cls, name: str = RECOMMENDED, **overrides: Any) -> TrainConfig:
        """A model preset with the training settings chosen for it on the development datasets
        (docs/BENCHMARKS.md: "Quality on real data"); keyword arguments override them."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        base: dict[str, Any] = {"model": name}
        if name == "small":
            base.update(tokenizer="minilm", steps=300, lr=3e-3, batch_size=48)
        elif name in ("minilm", "stem", "default"):
            base.update(
                steps=600,
                batch_size=64,
                lr=1e-3,
                warmup_steps=30,
                freeze_text_layers=99,
                augment=True,
                validation_fraction=0.1,
                weights=LossWeights(neighbor_image_image=0.5, neighbor_text_text=0.5),
            )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def feature_cache_dir(self) -> Path | None:
        return Path(self.feature_cache) if self.feature_cache else None

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
            cfg = PinClipConfig.from_dict(self.model_config)
        else:
            cfg = model_preset(self.model)
        if self.vision_checkpoint:
            from encoder.towers import vision_config_from_checkpoint

            cfg.vision = vision_config_from_checkpoint(self.vision_checkpoint, cfg.vision)
        return cfg

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
