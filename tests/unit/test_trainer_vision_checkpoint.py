"""`--vision-checkpoint DIR`: a local Hugging Face vision checkpoint replaces the ViT, trains,
exports to ONNX and serves with its own input size and normalisation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ResNetConfig, ResNetModel, ViTConfig, ViTModel

from encoder.export import export_model
from encoder.model import PinClipModel
from encoder.runtime import OnnxEncoder
from trainer.config import TrainConfig
from trainer.generator import GeneratorConfig, generate
from trainer.loop import train

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def _save_checkpoint(kind: str, directory: Path) -> None:
    torch.manual_seed(0)
    if kind == "vit":
        config = ViTConfig(image_size=40, patch_size=8, hidden_size=24, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=48)  # fmt: skip
        ViTModel(config, add_pooling_layer=False).save_pretrained(directory)
    else:
        config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                              layer_type="basic")  # fmt: skip
        ResNetModel(config).save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(
        json.dumps({"size": {"height": 40, "width": 40}, "image_mean": MEAN, "image_std": STD})
    )


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_vision_checkpoint_trains_exports_and_serves(kind: str, tmp_path: Path) -> None:
    data, checkpoint = tmp_path / "data", tmp_path / kind
    generate(data, GeneratorConfig(num_pins=64, num_boards=12, num_users=8, image_size=32, seed=3))
    _save_checkpoint(kind, checkpoint)
    cfg = TrainConfig(data=str(data), out_dir=str(tmp_path / "run"), model="tiny", steps=3,
                      batch_size=8, num_workers=0, progress=False, heldout_fraction=0.2,
                      vision_checkpoint=str(checkpoint))  # fmt: skip
    result = train(cfg, resume=False)
    assert result.steps == 3
    model = PinClipModel.load(result.model_dir)
    assert model.config.vision.pretrained_path == str(checkpoint)
    assert (model.config.vision.image_size, list(model.config.vision.mean)) == (40, MEAN)

    manifest = export_model(model, tmp_path / "v1", version=1)
    assert manifest.preprocess.image_size == 40 and manifest.preprocess.std == STD
    encoder = OnnxEncoder.load(tmp_path / "v1", provider="cpu")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 50, 3), np.uint8)).save(
        buffer, "PNG"
    )
    pixels = encoder.image_preprocessor().load(buffer.getvalue())[None]
    assert pixels.shape == (1, 3, 40, 40)
    with torch.no_grad():
        expected = model.encode_image(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(encoder.encode_images(pixels), expected, atol=1e-4)
