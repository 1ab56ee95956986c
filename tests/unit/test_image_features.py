"""The feature-bank image tower: fitted on images, whitened, saved in the weights, exported to
ONNX with the same numbers; and the guard that keeps the step-0 heads when training hurts."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageDraw

from encoder.config import PinClipConfig, VisionConfig
from encoder.export import export_model
from encoder.image_features import FeatureBankTower
from encoder.model import PinClipModel
from trainer.evaluate import EvalIndex
from trainer.guard import ALPHAS, choose_heads, head_state


def _config() -> PinClipConfig:
    tiny = PinClipConfig.tiny()
    vision = VisionConfig(image_size=32, width=32, kind="features", bank_kmeans=16, bank_dim=24)
    return replace(tiny, vision=vision)


def _pixels(model: PinClipModel, n: int = 40) -> torch.Tensor:
    """Real decoded PNGs of coloured shapes, preprocessed as serving does."""
    rng = np.random.default_rng(3)
    pre = model.image_preprocessor()
    out = []
    for _ in range(n):
        image = Image.new("RGB", (48, 48), tuple(int(c) for c in rng.integers(0, 256, 3)))
        box = sorted(rng.integers(0, 48, 2).tolist()) + sorted(rng.integers(0, 48, 2).tolist())
        ImageDraw.Draw(image).rectangle(
            (box[0], box[2], box[1], box[3]), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
        )
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(pre.load(buffer.getvalue()))
    return torch.from_numpy(np.stack(out))


def _fitted() -> tuple[PinClipModel, torch.Tensor]:
    torch.manual_seed(0)
    model = PinClipModel(_config()).eval()
    pixels = _pixels(model)
    assert isinstance(model.vision, FeatureBankTower) and not model.vision.is_fitted()
    model.vision.fit(pixels, seed=0)
    return model, pixels


def test_fit_whitens_the_bank_of_the_fitting_images() -> None:
    model, pixels = _fitted()
    assert isinstance(model.vision, FeatureBankTower) and model.vision.is_fitted()
    with torch.no_grad():
        bank = model.vision.bank(pixels)
    assert bank.shape == (len(pixels), 24)
    assert bank.mean(0).abs().max() < 1e-3  # centred on the fitting images
    # Whitened (up to the regulariser): no direction dominates.
    scale = bank.std(0)
    assert scale.max() < 1.1 and scale.max() / scale.min() < 50


def test_fitted_tower_survives_save_load_and_onnx_export(tmp_path: Path) -> None:
    model, pixels = _fitted()
    ids, mask = model.text_preprocessor().encode(["red square", "blue ring"] * 2)
    with torch.no_grad():
        expected = model(pixels[:4], torch.from_numpy(ids), torch.from_numpy(mask))
        loaded = PinClipModel.load(_saved(model, tmp_path / "model"))
        again = loaded(pixels[:4], torch.from_numpy(ids), torch.from_numpy(mask))
    torch.testing.assert_close(again.pin, expected.pin)
    export_model(model, tmp_path / "onnx", version=1)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "image.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: pixels[:4].numpy()})
    np.testing.assert_allclose(got, expected.image.numpy(), atol=1e-4)


def _saved(model: PinClipModel, directory: Path) -> Path:
    model.save(directory)
    return directory


def test_guard_returns_to_the_step0_heads_when_training_hurt() -> None:
    """A validation signal that falls as the heads move from θ0 → α = 0, exactly θ0."""
    torch.manual_seed(0)
    model = PinClipModel(PinClipConfig.tiny())
    start = head_state(model)
    with torch.no_grad():  # "training" that hurts: the heads move far away
        for name in ("pin_head", "text_head"):
            for p in getattr(model, name).parameters():
                p.add_(torch.randn_like(p))
    rng = np.random.default_rng(0)
    good = np.repeat(np.eye(4, dtype=np.float32), 10, axis=0)  # 4 boards of 10 pins
    noise = rng.standard_normal(good.shape).astype(np.float32)
    index = EvalIndex(
        pins=[],
        query_rows=np.arange(0, 40, 10),
        candidate_rows=np.setdiff1d(np.arange(40), np.arange(0, 40, 10)),
        relevant=[set(range(9 * b, 9 * b + 9)) for b in range(4)],
    )

    def drift(name: str) -> float:
        head = getattr(model, name).state_dict()
        return float(sum((head[k] - start[name][k]).norm() for k in head))

    def embed() -> dict[str, np.ndarray]:
        return {
            key: good + 10 * drift(name) * noise
            for key, name in (("pin", "pin_head"), ("text", "text_head"))
        }

    choices = choose_heads(model, start, index, embed)
    assert {c.alpha for c in choices.values()} == {0.0}
    assert set(choices["pin_head"].recall_at_10) == set(ALPHAS)
    for name in ("pin_head", "text_head"):
        for key, value in getattr(model, name).state_dict().items():
            torch.testing.assert_close(value, start[name][key])
