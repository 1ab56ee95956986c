"""Vision and text towers: transformers models built from our config or a local checkpoint.

A tower is whatever transformers model returns `last_hidden_state` [B, T, W]; the model only
needs its width. Building from a saved HF config (no weights) is how a model directory loads
without the original checkpoint files present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    BertModel,
    PretrainedConfig,
    ViTConfig,
    ViTModel,
)

from encoder.bank_tower import BankTower
from encoder.config import TextConfig, VisionConfig
from encoder.image_features import FeatureBankTower
from encoder.stem_vit import PretrainedStemTower
from encoder.tokenizer import resolve_text_checkpoint

# Eager attention exports to ONNX everywhere and is as fast as SDPA at these sizes on CPU.
ATTENTION = "eager"


class ConvStem(nn.Module):
    """The hybrid ViT's stem: log2(patch) stride-2 3×3 convolutions (BatchNorm + GELU), then a
    1×1 projection to the ViT width. Output grid = image / patch, as the patch projection's."""

    def __init__(self, width: int, patch_size: int, channels: int = 3) -> None:
        super().__init__()
        stages = int(math.log2(patch_size))
        if 2**stages != patch_size:
            raise ValueError(f"conv stem needs a power-of-two patch size, not {patch_size}")
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(stages):
            c_out = min(width, 32 * 2**i)
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.GELU(),
            ]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, width, 1))
        self.layers = nn.Sequential(*layers)

    @property
    def weight(self) -> Tensor:
        """ViTModel reads `projection.weight.dtype` to cast its input; the first conv's."""
        first: nn.Conv2d = self.layers[0]  # type: ignore[assignment]
        return first.weight

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.layers(pixel_values)  # type: ignore[no-any-return]


class FeatureMapTokens(nn.Module):
    """A convolutional checkpoint (ResNet, ConvNeXt, ...) as a token tower: its last feature
    map [B,C,H,W] becomes [B, 1+H·W, C], token 0 being the mean (the CLS role)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        config: PretrainedConfig = model.config  # type: ignore[assignment]
        sizes = getattr(config, "hidden_sizes", None) or [config.hidden_size]
        self.width = int(sizes[-1])

    def forward(self, pixel_values: Tensor) -> SimpleNamespace:
        feature_map = self.model(pixel_values=pixel_values).last_hidden_state
        tokens = feature_map.flatten(2).transpose(1, 2)
        return SimpleNamespace(
            last_hidden_state=torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        )


def vision_config_from_checkpoint(
    path: str | Path, base: VisionConfig | None = None
) -> VisionConfig:
    """Our VisionConfig for a local HF vision checkpoint: its input size and normalisation."""
    root = Path(path)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{root}: not a Hugging Face checkpoint (no config.json)")
    cfg = VisionConfig(**{**(base.__dict__ if base else {}), "pretrained_path": str(root)})
    hf = json.loads((root / "config.json").read_text())
    hf = hf.get("vision_config", hf)  # CLIP-style composite configs
    if isinstance(hf.get("image_size"), int):
        cfg.image_size = int(hf["image_size"])
    pre = root / "preprocessor_config.json"
    if pre.is_file():
        spec = json.loads(pre.read_text())
        size = spec.get("crop_size") or spec.get("size")
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge")
        if isinstance(size, int):
            cfg.image_size = size
        if spec.get("image_mean") and spec.get("image_std"):
            cfg.mean = tuple(float(x) for x in spec["image_mean"])  # type: ignore[assignment]
            cfg.std = tuple(float(x) for x in spec["image_std"])  # type: ignore[assignment]
    return cfg


def _as_token_tower(model: nn.Module) -> nn.Module:
    return FeatureMapTokens(model) if hasattr(model.config, "hidden_sizes") else model


def build_vision_tower(cfg: VisionConfig, saved_config: Path | None = None) -> nn.Module:
    """A ViT from our numbers, a local HF checkpoint, or (loading) an architecture-only config;
    or a tower whose architecture is all in `cfg`: the feature-bank tower (`kind="features"`)
    or the hybrid ViT on a pretrained stem (`kind="stem"`; its ImageNet weights are loaded when
    building for training, not when loading a saved model, whose own weights follow)."""
    if cfg.kind == "features" and not cfg.pretrained_path:
        return FeatureBankTower(cfg)
    if cfg.kind == "stem" and not cfg.pretrained_path:
        return PretrainedStemTower(cfg, load_weights=saved_config is None)
    if cfg.kind != "vit" and not cfg.pretrained_path:
        raise ValueError(f"vision kind must be 'vit', 'features' or 'stem', not {cfg.kind!r}")
    if saved_config is not None:
        tower = _as_token_tower(_from_saved_config(saved_config))
        return _with_stem(tower, cfg) if not cfg.pretrained_path else tower
    if cfg.pretrained_path:
        return _as_token_tower(
            _without_pooler(
                AutoModel.from_pretrained(
                    cfg.pretrained_path, local_files_only=True, attn_implementation=ATTENTION
                )
            )
        )
    hf = ViTConfig(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        hidden_size=cfg.width,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=int(cfg.width * cfg.mlp_ratio),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        qkv_bias=True,
    )
    hf._attn_implementation = ATTENTION
    return _with_stem(ViTModel(hf, add_pooling_layer=False), cfg)


def _with_stem(tower: nn.Module, cfg: VisionConfig) -> nn.Module:
    if cfg.stem == "conv":
        patches: nn.Module = tower.embeddings.patch_embeddings  # type: ignore[union-attr,assignment]
        patches.projection = ConvStem(cfg.width, cfg.patch_size)
    elif cfg.stem != "patch":
        raise ValueError(f"vision stem must be 'patch' or 'conv', not {cfg.stem!r}")
    return tower


def build_text_tower(
    cfg: TextConfig, vocab_size: int, saved_config: Path | None = None
) -> nn.Module:
    """MiniLM-L6 (packaged), a local HF checkpoint, a random tiny BERT, or a saved config."""
    if saved_config is not None:
        return _from_saved_config(saved_config)
    if cfg.pretrained is not None:
        return _without_pooler(
            AutoModel.from_pretrained(
                str(resolve_text_checkpoint(cfg.pretrained)),
                local_files_only=True,
                attn_implementation=ATTENTION,
            )
        )
    hf = BertConfig(
        vocab_size=cfg.vocab_size or vocab_size,
        hidden_size=cfg.width,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=int(cfg.width * cfg.mlp_ratio),
        max_position_embeddings=max(cfg.max_length, 64),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    hf._attn_implementation = ATTENTION
    return BertModel(hf, add_pooling_layer=False)


def _without_pooler(tower: nn.Module) -> nn.Module:
    """We pool ourselves (CLS / masked mean); an unused pooler would be dead weights."""
    if getattr(tower, "pooler", None) is not None:
        # Convolutional models call their pooler unconditionally: give them a free one.
        conv = hasattr(getattr(tower, "config", None), "hidden_sizes")
        tower.pooler = nn.Identity() if conv else None  # type: ignore[assignment]
    return tower


def tower_width(tower: nn.Module) -> int:
    if isinstance(tower, FeatureMapTokens | BankTower):
        return tower.width
    config: PretrainedConfig = tower.config  # type: ignore[assignment]
    return int(config.hidden_size)


def save_tower_config(tower: nn.Module, directory: Path) -> None:
    """Architecture only; the weights live in the model's single safetensors file. (The
    bank towers have no transformers config: the model's config.json describes them.)"""
    if isinstance(tower, BankTower):
        return
    tower.config.save_pretrained(directory)  # type: ignore[operator, union-attr]


def _from_saved_config(directory: Path) -> nn.Module:
    hf = AutoConfig.from_pretrained(directory, local_files_only=True)
    return _without_pooler(AutoModel.from_config(hf, attn_implementation=ATTENTION))
