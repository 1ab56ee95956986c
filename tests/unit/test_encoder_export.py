"""Export → onnxruntime parity on real decoded images, manifest, provider selection."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from encoder.config import PinClipConfig
from encoder.export import export_model
from encoder.manifest import Manifest
from encoder.model import PinClipModel, as_tensors
from encoder.runtime import CPU, ModelDirectoryCorrupt, OnnxEncoder, ProviderUnavailable

TEXTS = ["Rustic kitchen | open shelves and brass", "x", "Summer outfit ideas for the beach"]


def _images() -> list[bytes]:
    """Real files: a photo-like JPEG, a PNG with alpha, a tall GIF."""
    rng = np.random.default_rng(7)
    out = []
    for size, fmt, mode in (
        ((320, 240), "JPEG", "RGB"),
        ((64, 64), "PNG", "RGBA"),
        ((50, 150), "GIF", "RGB"),
    ):
        channels = 4 if mode == "RGBA" else 3
        pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode).save(buffer, fmt)
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[PinClipModel, Path]:
    torch.manual_seed(1)
    model = PinClipModel(PinClipConfig.tiny()).eval()
    out = tmp_path_factory.mktemp("v3")
    export_model(model, out, version=3, parent_version=2, eval_summary={"recall@10": 0.5})
    return model, out


@pytest.fixture(scope="module")
def inputs(exported: tuple[PinClipModel, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, out = exported
    encoder = OnnxEncoder.load(out, provider="cpu")
    pixels = np.stack([encoder.image_preprocessor().load(data) for data in _images()])
    ids, mask = encoder.text_preprocessor().encode(TEXTS)
    assert mask.min() == 0  # the batch really contains padding
    return pixels, ids, mask


def test_onnx_matches_torch_on_real_images(exported, inputs) -> None:
    model, out = exported
    encoder = OnnxEncoder.load(out, provider="cpu")
    pixels, ids, mask = inputs
    with torch.no_grad():
        expected = model(*as_tensors(pixels, ids, mask))
    got = encoder.encode_pins(pixels, ids, mask)
    for name in ("image", "text", "pin"):
        diff = np.abs(got[name] - getattr(expected, name).numpy()).max()
        assert diff < 1e-4, (name, diff)
    np.testing.assert_allclose(encoder.encode_images(pixels), expected.image.numpy(), atol=1e-4)
    np.testing.assert_allclose(encoder.encode_texts(ids, mask), expected.text.numpy(), atol=1e-4)


def test_torch_and_onnx_paths_preprocess_identically(exported) -> None:
    model, out = exported
    encoder = OnnxEncoder.load(out, provider="cpu")
    data = _images()[0]
    assert np.array_equal(
        model.image_preprocessor().load(data), encoder.image_preprocessor().load(data)
    )
    for a, b in zip(
        model.text_preprocessor().encode(TEXTS),
        encoder.text_preprocessor().encode(TEXTS),
        strict=True,
    ):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("batch", [1, 5])
def test_batch_axis_is_dynamic(exported, inputs, batch: int) -> None:
    _, out = exported
    encoder = OnnxEncoder.load(out, provider="cpu")
    pixels, ids, mask = (np.resize(a, (batch, *a.shape[1:])) for a in inputs)
    result = encoder.encode_pins(pixels, ids, mask)
    assert {k: v.shape for k, v in result.items()} == {k: (batch, 32) for k in result}
    # A row's embedding does not depend on the rest of the batch.
    single = encoder.encode_pins(pixels[:1], ids[:1], mask[:1])
    np.testing.assert_allclose(result["pin"][:1], single["pin"], atol=1e-5)


def test_manifest_describes_the_directory(exported) -> None:
    _, out = exported
    manifest = Manifest.load(out)
    assert (manifest.version, manifest.parent_version, manifest.dim) == (3, 2, 32)
    assert manifest.preprocess.image_size == 32 and manifest.preprocess.max_text_length == 32
    assert manifest.eval_summary == {"recall@10": 0.5}
    assert {"pin.onnx", "image.onnx", "text.onnx", "tokenizer.json", "config.json"} <= set(
        manifest.files
    )
    assert manifest.verify(out) == []
    assert json.loads((out / "manifest.json").read_text())["version"] == 3
    assert not list(out.glob("*.onnx.data"))  # weights live inside each graph


def test_tampered_file_is_refused(exported, tmp_path: Path) -> None:
    _, out = exported
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelDirectoryCorrupt, match=r"tokenizer\.json"):
        OnnxEncoder.load(copy, provider="cpu")


def test_auto_provider_reports_what_is_active(exported) -> None:
    _, out = exported
    encoder = OnnxEncoder.load(out, provider="auto")
    assert encoder.providers[0] in ort.get_available_providers()
    assert encoder.version == 3 and encoder.dim == 32


def test_cuda_request_fails_loudly_without_cuda(exported) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA; covered by the gpu test")
    _, out = exported
    with pytest.raises(ProviderUnavailable):
        OnnxEncoder.load(out, provider="cuda")


def test_unknown_provider_is_refused(exported) -> None:
    with pytest.raises(ValueError, match="provider"):
        OnnxEncoder.load(exported[1], provider="tpu")
    assert CPU == "CPUExecutionProvider"
