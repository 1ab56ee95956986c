"""The hybrid ViT on a pretrained MobileNetV2 stem: the published ImageNet weights load into our
layout exactly, they carry shape information a random stem does not, a saved model reloads
without them, and the whole tower (stem included) exports to ONNX with the same numbers."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image, ImageDraw

import encoder.stem_vit
from encoder.config import IMAGENET_MEAN, IMAGENET_STD, PinClipConfig, VisionConfig
from encoder.export import export_model
from encoder.mobilenet import MobileNetV2Features
from encoder.model import PinClipModel
from encoder.stem_vit import PretrainedStemTower
from encoder.weights import weight_path


def _config(image_size: int = 64) -> PinClipConfig:
    vision = VisionConfig(
        image_size=image_size, width=32, layers=1, heads=2, kind="stem",
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )  # fmt: skip
    return replace(PinClipConfig.tiny(), vision=vision)


def _shapes(model: PinClipModel, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Real PNGs: a circle or a square (the label), random colours, sizes and places."""
    rng = np.random.default_rng(seed)
    pre = model.image_preprocessor()
    images, labels = [], []
    for i in range(n):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        image = Image.new("RGB", (128, 128), tuple(int(c) for c in rng.integers(0, 256, 3)))
        size = int(rng.integers(30, 70))
        x, y = (int(v) for v in rng.integers(0, 128 - size, 2))
        draw = ImageDraw.Draw(image)
        (draw.ellipse if i % 2 else draw.rectangle)((x, y, x + size, y + size), fill=colour)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        images.append(pre.load(buffer.getvalue()))
        labels.append(i % 2)
    return torch.from_numpy(np.stack(images)), np.array(labels)


def test_the_published_checkpoint_loads_into_our_layout_exactly() -> None:
    state = torch.load(weight_path("mobilenet_v2"), map_location="cpu", weights_only=True)
    ours = MobileNetV2Features()
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    ours.load_state_dict(features, strict=True)  # every name and shape matches torchvision's
    assert set(state) - set(features) == {"classifier.1.weight", "classifier.1.bias"}


def _nn_accuracy(features: torch.Tensor, labels: np.ndarray) -> float:
    f = torch.nn.functional.normalize(features, dim=1)
    sim = f @ f.t()
    sim.fill_diagonal_(-2)
    return float((labels[sim.argmax(1).numpy()] == labels).mean())


def test_pretrained_stem_features_know_shapes_a_random_stem_does_not() -> None:
    torch.manual_seed(0)
    pretrained = PinClipModel(_config(224)).eval()
    random_stem = PretrainedStemTower(_config(224).vision, load_weights=False).eval()
    pixels, labels = _shapes(pretrained, 60, seed=1)
    assert isinstance(pretrained.vision, PretrainedStemTower)
    with torch.no_grad():
        good = pretrained.vision.bank(pixels)[:, -1280:]
        bad = random_stem.bank(pixels)[:, -1280:]
    # Colours are random, so only shape separates the classes: 1-NN accuracy on the pooled
    # ImageNet features against an identical network with random weights.
    assert _nn_accuracy(good, labels) >= 0.8
    assert _nn_accuracy(good, labels) > _nn_accuracy(bad, labels) + 0.1


def test_the_stem_stays_frozen_and_in_eval_mode() -> None:
    model = PinClipModel(_config())
    model.train()
    assert isinstance(model.vision, PretrainedStemTower)
    assert not model.vision.stem.training
    assert not any(p.requires_grad for p in model.vision.stem.parameters())
    assert any(p.requires_grad for p in model.vision.blocks.parameters())


def test_saved_model_reloads_and_exports_without_fetching_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = PinClipModel(_config()).eval()
    pixels, _ = _shapes(model, 4, seed=2)
    ids, mask = model.text_preprocessor().encode(["red square", "blue ring"] * 2)
    with torch.no_grad():
        expected = model(pixels, torch.from_numpy(ids), torch.from_numpy(mask))
    model.save(tmp_path / "model")

    def no_fetch(name: str) -> Path:
        raise AssertionError(f"a saved model must not need the {name} download")

    monkeypatch.setattr(encoder.stem_vit, "weight_path", no_fetch)
    loaded = PinClipModel.load(tmp_path / "model")
    with torch.no_grad():
        again = loaded(pixels, torch.from_numpy(ids), torch.from_numpy(mask))
    torch.testing.assert_close(again.image, expected.image)
    torch.testing.assert_close(again.pin, expected.pin)
    export_model(loaded, tmp_path / "onnx", version=1)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "image.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: pixels.numpy()})
    np.testing.assert_allclose(got, expected.image.numpy(), atol=1e-4)


def test_image_size_must_fit_the_stride() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        PretrainedStemTower(replace(_config().vision, image_size=100), load_weights=False)
