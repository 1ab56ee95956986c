"""Vision and text towers: transformers models built from our config or a local checkpoint.

A tower is whatever transformers model returns `last_hidden_state` [B, T, W]; the model only
needs its width. Building from a saved HF config (no weights) is how a model directory loads
without the original checkpoint files present.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    BertModel,
    PretrainedConfig,
    ViTConfig,
    ViTModel,
)

from encoder.config import TextConfig, VisionConfig
from encoder.tokenizer import resolve_text_checkpoint

# Eager attention exports to ONNX everywhere and is as fast as SDPA at these sizes on CPU.
ATTENTION = "eager"


def build_vision_tower(cfg: VisionConfig, saved_config: Path | None = None) -> nn.Module:
    """A ViT from our numbers, a local HF checkpoint, or (loading) an architecture-only config."""
    if saved_config is not None:
        return _from_saved_config(saved_config)
    if cfg.pretrained_path:
        return _without_pooler(
            AutoModel.from_pretrained(
                cfg.pretrained_path, local_files_only=True, attn_implementation=ATTENTION
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
    return ViTModel(hf, add_pooling_layer=False)


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
        tower.pooler = None  # type: ignore[assignment]
    return tower


def tower_width(tower: nn.Module) -> int:
    config: PretrainedConfig = tower.config  # type: ignore[assignment]
    return int(config.hidden_size)


def save_tower_config(tower: nn.Module, directory: Path) -> None:
    """Architecture only; the weights live in the model's single safetensors file."""
    tower.config.save_pretrained(directory)  # type: ignore[operator, union-attr]


def _from_saved_config(directory: Path) -> nn.Module:
    hf = AutoConfig.from_pretrained(directory, local_files_only=True)
    return _without_pooler(AutoModel.from_config(hf, attn_implementation=ATTENTION))
