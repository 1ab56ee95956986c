"""EncoderService end to end on exported tiny models: embed, rejections, hot swap under load."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder.config import PinClipConfig
from encoder.export import export_model
from encoder.model import PinClipModel
from encoder.preprocess import ImageRejected, pin_text
from encoder.runtime import OnnxEncoder
from encoder.service import EncoderService, PinContent, PinEmbedding


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    dirs = []
    for version, seed in ((1, 0), (2, 1)):
        torch.manual_seed(seed)
        out = tmp_path_factory.mktemp(f"v{version}")
        export_model(PinClipModel(PinClipConfig.tiny()), out, version=version)
        dirs.append(out)
    return dirs[0], dirs[1]


def _expected(model_dir: Path, content: PinContent) -> dict[str, np.ndarray]:
    encoder = OnnxEncoder.load(model_dir, provider="cpu")
    pixels = encoder.image_preprocessor().load(content.image_bytes)[None]
    ids, mask = encoder.text_preprocessor().encode([pin_text(content.title, content.description)])
    return {k: v[0] for k, v in encoder.encode_pins(pixels, ids, mask).items()}


async def test_embed_returns_the_versioned_vectors_of_a_direct_call(model_dirs) -> None:
    content = PinContent("Tiny house", "loft bed and skylight", _jpeg(1))
    async with EncoderService.load(model_dirs[0], max_batch=8, max_delay_ms=2) as svc:
        result = await svc.embed(content)
    assert result.version == 1
    expected = _expected(model_dirs[0], content)
    for name in ("image", "text", "pin"):
        np.testing.assert_allclose(getattr(result, name), expected[name], atol=1e-5)


async def test_embed_many_keeps_a_bad_image_to_its_own_slot(model_dirs) -> None:
    contents = [PinContent(f"pin {i}", "desc", _jpeg(i)) for i in range(10)]
    contents[4] = PinContent("broken", "desc", _jpeg(4)[:300])
    async with EncoderService.load(model_dirs[0], max_batch=4, max_delay_ms=5) as svc:
        results = await svc.embed_many(contents)
    assert isinstance(results[4], ImageRejected) and results[4].reason == "truncated"
    good = [r for i, r in enumerate(results) if i != 4]
    assert all(isinstance(r, PinEmbedding) and r.pin is not None for r in good)
    # Distinct inputs, distinct outputs: nothing was mixed up inside a batch.
    pins = np.stack([r.pin for r in good if isinstance(r, PinEmbedding)])
    assert len({tuple(np.round(p, 5)) for p in pins}) == 9


async def test_text_and_image_queries_use_their_own_heads(model_dirs) -> None:
    content = PinContent("Wedding flowers", "", _jpeg(3))
    async with EncoderService.load(model_dirs[0], max_delay_ms=1) as svc:
        text = await svc.embed_text("Wedding flowers")
        image = await svc.embed_image(content.image_bytes)
        full = await svc.embed(content)
    assert text.image is None and text.pin is None
    assert image.text is None and image.pin is None
    assert text.text is not None and full.text is not None
    np.testing.assert_allclose(text.text, full.text, atol=1e-5)
    assert image.image is not None and full.image is not None
    np.testing.assert_allclose(image.image, full.image, atol=1e-5)


async def test_request_timeout_applies(model_dirs) -> None:
    svc = EncoderService.load(model_dirs[0], request_timeout_s=1e-6, max_delay_ms=50)
    with pytest.raises(TimeoutError):
        await svc.embed_text("too slow")
    await svc.close()


async def test_hot_swap_under_load_drops_nothing_and_labels_every_result(model_dirs) -> None:
    old_dir, new_dir = model_dirs
    content = PinContent("Garden path", "stepping stones", _jpeg(9))
    expected = {1: _expected(old_dir, content)["pin"], 2: _expected(new_dir, content)["pin"]}
    svc = EncoderService.load(old_dir, max_batch=8, max_delay_ms=2)
    results: list[PinEmbedding] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            results.append(await svc.embed(content))

    async def until(count: int) -> None:
        while len(results) < count:
            await asyncio.sleep(0.005)

    clients = [asyncio.create_task(client()) for _ in range(16)]
    await asyncio.wait_for(until(32), timeout=60)  # load is flowing on version 1
    assert await svc.swap(new_dir) == 2
    after_swap = len(results)
    await asyncio.wait_for(until(after_swap + 64), timeout=60)
    stop.set()
    await asyncio.gather(*clients)  # no client saw an error
    await svc.close()

    versions = [r.version for r in results]
    assert set(versions) == {1, 2}
    assert all(v == 2 for v in versions[after_swap + 16 :])  # beyond those in flight at swap
    for r in results:  # each result really came from the version it names
        assert r.pin is not None
        np.testing.assert_allclose(r.pin, expected[r.version], atol=1e-5)
    assert svc.version == 2


async def test_failed_swap_keeps_serving_the_old_version(model_dirs, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    async with EncoderService.load(model_dirs[0], max_delay_ms=1) as svc:
        with pytest.raises(ValueError):
            await svc.swap(broken)
        result = await svc.embed(PinContent("still", "here", _jpeg(5)))
    assert result.version == 1 and svc.version == 1
