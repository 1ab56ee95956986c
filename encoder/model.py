"""PinClipModel: vision tower + text tower + hybrid fusion → three embeddings in one space.

Outputs, all L2-normalised [B, D]:
- image: the ViT's CLS token → head (global image content),
- text: mean of the text tower's real tokens → head (title + description),
- pin: the fusion token after attending over image patches and text tokens → head; with
  residual heads (`HeadConfig.residual`) the pin head also sees the pooled text and the image
  token directly, and starts out equal to the text embedding (see `encoder/heads.py`).
One space, so text, image and pin queries all search the same index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from encoder.bank_tower import BankTower
from encoder.config import PinClipConfig
from encoder.fusion import HybridFusion
from encoder.heads import PinHead, ResidualHead
from encoder.preprocess import ImagePreprocessor, TextPreprocessor
from encoder.tokenizer import tokenizer_json_for
from encoder.towers import build_text_tower, build_vision_tower, save_tower_config, tower_width

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
VISION_TOWER_DIR = "vision_tower"
TEXT_TOWER_DIR = "text_tower"


@dataclass
class PinClipOutput:
    image: Tensor
    text: Tensor
    pin: Tensor


class PinClipModel(nn.Module):
    def __init__(
        self,
        config: PinClipConfig,
        tokenizer_json: str | None = None,
        _tower_configs: Path | None = None,
    ) -> None:
        """Builds the towers from `config` (loading pretrained tower weights where configured).

        `tokenizer_json` overrides the text tower's own tokenizer; `_tower_configs` is used by
        `load` to rebuild the exact architectures without the original checkpoints.
        """
        super().__init__()
        self.config = config
        self.tokenizer_json = tokenizer_json or tokenizer_json_for(config.text.pretrained)
        vocab_size = TextPreprocessor(self.tokenizer_json, 8).tokenizer.get_vocab_size()
        saved = _tower_configs
        self.vision = build_vision_tower(config.vision, saved / VISION_TOWER_DIR if saved else None)
        self.text = build_text_tower(
            config.text, vocab_size, saved / TEXT_TOWER_DIR if saved else None
        )
        vision_width, text_width = tower_width(self.vision), tower_width(self.text)
        dim = config.embed_dim
        self.fusion = HybridFusion(config.fusion, vision_width, text_width)
        self.image_head: nn.Module
        self.text_head: nn.Module
        self.pin_head: nn.Module
        if config.heads.residual:
            hidden = config.heads.mlp_hidden
            self.image_head = ResidualHead(vision_width, dim, hidden)
            self.text_head = ResidualHead(text_width, dim, hidden)
            self.pin_head = PinHead(text_width, vision_width, config.fusion.width, dim, hidden)
            self.pin_head.start_as(self.text_head)
        else:
            self.image_head = nn.Linear(vision_width, dim, bias=False)
            self.text_head = nn.Linear(text_width, dim, bias=False)
            self.pin_head = nn.Linear(config.fusion.width, dim, bias=False)
            for head in (self.image_head, self.text_head, self.pin_head):
                # A (semi-)orthogonal projection keeps a pretrained tower's cosine geometry as
                # well as a down-projection can.
                nn.init.orthogonal_(head.weight)

    # --- towers -------------------------------------------------------------------------

    def image_tokens(self, pixel_values: Tensor) -> Tensor:
        """[B,3,S,S] → [B,1+P,Wv]; token 0 is the CLS token."""
        out = self.vision(pixel_values=pixel_values)
        tokens: Tensor = out.last_hidden_state  # transformers' outputs are untyped
        return tokens

    def image_tokens_from(self, images: Tensor) -> Tensor:
        """Image tokens from pixels [B,3,S,S], or from a bank tower's cached fixed part [B,D]
        (training: the feature banks or the frozen stem ran once per dataset)."""
        if images.dim() == 2 and isinstance(self.vision, BankTower):
            return self.vision.tokens(images).last_hidden_state  # type: ignore[no-any-return]
        return self.image_tokens(images)

    def text_tokens(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.text(input_ids=input_ids, attention_mask=attention_mask)
        tokens: Tensor = out.last_hidden_state
        return tokens

    # --- heads --------------------------------------------------------------------------

    @staticmethod
    def pool_text(tokens: Tensor, attention_mask: Tensor) -> Tensor:
        """Mean over real tokens, as sentence-transformers pools MiniLM: keeps its semantics."""
        mask = attention_mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def text_from_pooled(self, pooled: Tensor) -> Tensor:
        return F.normalize(self.text_head(pooled), dim=-1)

    def image_from_tokens(self, tokens: Tensor) -> Tensor:
        return F.normalize(self.image_head(tokens[:, 0]), dim=-1)

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        return self.image_from_tokens(self.image_tokens(pixel_values))

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        tokens = self.text_tokens(input_ids, attention_mask)
        return self.text_from_pooled(self.pool_text(tokens, attention_mask))

    def embed(
        self, image_tokens: Tensor, text_tokens: Tensor, attention_mask: Tensor
    ) -> PinClipOutput:
        """The three heads from tower outputs (training may pass cached text tokens)."""
        pooled = self.pool_text(text_tokens, attention_mask)
        # A tower without patch tokens (the feature-bank tower) gives the fusion its summary.
        patches = image_tokens[:, 1:] if image_tokens.shape[1] > 1 else image_tokens
        fused = self.fusion(patches, text_tokens, attention_mask)
        if isinstance(self.pin_head, PinHead):
            pin = self.pin_head(pooled, image_tokens[:, 0], fused)
        else:
            pin = self.pin_head(fused)
        return PinClipOutput(
            image=self.image_from_tokens(image_tokens),
            text=self.text_from_pooled(pooled),
            pin=F.normalize(pin, dim=-1),
        )

    def forward(
        self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor
    ) -> PinClipOutput:
        return self.embed(
            self.image_tokens(pixel_values),
            self.text_tokens(input_ids, attention_mask),
            attention_mask,
        )

    # --- preprocessing shared with serving ------------------------------------------------

    def image_preprocessor(self) -> ImagePreprocessor:
        v, lim = self.config.vision, self.config.limits
        return ImagePreprocessor(
            v.image_size, v.mean, v.std, lim.max_image_bytes, lim.max_image_pixels
        )

    def text_preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor(
            self.tokenizer_json, self.config.text.max_length, self.config.limits.max_text_chars
        )

    # --- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """config.json + model.safetensors + tokenizer.json + the towers' architecture configs."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.config.save(out / CONFIG_FILE)
        (out / TOKENIZER_FILE).write_text(self.tokenizer_json)
        save_tower_config(self.vision, out / VISION_TOWER_DIR)
        save_tower_config(self.text, out / TEXT_TOWER_DIR)
        save_model(self, str(out / WEIGHTS_FILE))

    @classmethod
    def load(cls, directory: str | Path, map_location: str = "cpu") -> PinClipModel:
        """Rebuilds from the directory alone: no pretrained checkpoint files are needed."""
        src = Path(directory)
        config = PinClipConfig.load(src / CONFIG_FILE)
        model = cls(config, (src / TOKENIZER_FILE).read_text(), _tower_configs=src)
        load_model(model, str(src / WEIGHTS_FILE), strict=True, device=map_location)
        model.eval()
        return model


def describe(model: PinClipModel) -> str:
    """One-line summary for logs: parameter counts per part."""
    parts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("vision", "text", "fusion")
    }
    return json.dumps({"params": parts, "embed_dim": model.config.embed_dim})


def as_tensors(*arrays: object) -> tuple[Tensor, ...]:
    """numpy arrays from the preprocessors → tensors without copying (the torch path)."""
    return tuple(torch.from_numpy(a) for a in arrays)  # type: ignore[arg-type]
