"""Export a PinClipModel to a servable model directory: three ONNX graphs + manifest.

We use the TorchScript-based exporter (`dynamo=False`): for these plain ViT/BERT graphs it is
deterministic, keeps weights inside each .onnx file (no side .onnx.data), and gives a dynamic
batch axis with `dynamic_axes`. Parity with eager torch is checked by the tests.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import torch
from torch import Tensor, nn

from encoder.manifest import (
    IMAGE_ONNX,
    PIN_ONNX,
    TEXT_ONNX,
    Manifest,
    PreprocessSpec,
    hash_directory,
)
from encoder.model import PinClipModel

log = structlog.get_logger(__name__)

DEFAULT_OPSET = 17


class _PinGraph(nn.Module):
    def __init__(self, model: PinClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model(pixel_values, input_ids, attention_mask)
        return out.image, out.text, out.pin


class _ImageGraph(nn.Module):
    def __init__(self, model: PinClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model.encode_image(pixel_values)


class _TextGraph(nn.Module):
    def __init__(self, model: PinClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.model.encode_text(input_ids, attention_mask)


def _export(
    graph: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    opset: int,
) -> None:
    axes: dict[str, dict[int, str]] = {name: {0: "batch"} for name in inputs + outputs}
    for name in ("input_ids", "attention_mask"):
        if name in axes:
            axes[name][1] = "tokens"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python-bool shape checks
        torch.onnx.export(
            graph,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def example_inputs(model: PinClipModel, batch: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Trace inputs: real-shaped, with a padded text row so masking is traced."""
    size = model.config.vision.image_size
    length = min(8, model.config.text.max_length)
    pixel_values = torch.randn(batch, 3, size, size)
    input_ids = torch.full((batch, length), 5, dtype=torch.long)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[-1, length // 2 :] = 0
    return pixel_values, input_ids, attention_mask


def export_model(
    model: PinClipModel,
    out_dir: str | Path,
    version: int,
    parent_version: int | None = None,
    opset: int = DEFAULT_OPSET,
    eval_summary: dict[str, Any] | None = None,
) -> Manifest:
    """Writes pin/image/text.onnx, the torch checkpoint (config, weights, tokenizer) and
    manifest.json into `out_dir`; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        model.save(out)
        pixel_values, input_ids, attention_mask = example_inputs(model)
        with torch.no_grad():
            _export(
                _PinGraph(model),
                (pixel_values, input_ids, attention_mask),
                out / PIN_ONNX,
                ["pixel_values", "input_ids", "attention_mask"],
                ["image", "text", "pin"],
                opset,
            )
            _export(
                _ImageGraph(model),
                (pixel_values,),
                out / IMAGE_ONNX,
                ["pixel_values"],
                ["image"],
                opset,
            )
            _export(
                _TextGraph(model),
                (input_ids, attention_mask),
                out / TEXT_ONNX,
                ["input_ids", "attention_mask"],
                ["text"],
                opset,
            )
    finally:
        model.train(was_training)
    cfg = model.config
    manifest = Manifest(
        version=version,
        dim=cfg.embed_dim,
        opset=opset,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        preprocess=PreprocessSpec(
            image_size=cfg.vision.image_size,
            mean=list(cfg.vision.mean),
            std=list(cfg.vision.std),
            max_text_length=cfg.text.max_length,
            max_image_bytes=cfg.limits.max_image_bytes,
            max_image_pixels=cfg.limits.max_image_pixels,
            max_text_chars=cfg.limits.max_text_chars,
        ),
        files=hash_directory(out),
        parent_version=parent_version,
        eval_summary=dict(eval_summary or {}),
    )
    manifest.save(out)
    log.info("encoder.exported", version=version, dir=out.name, dim=cfg.embed_dim, opset=opset)
    return manifest
