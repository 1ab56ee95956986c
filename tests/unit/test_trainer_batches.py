"""Training batches: neighbors come from the graph, false negatives are flagged, order resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from encoder.config import PinClipConfig  # noqa: E402
from encoder.preprocess import ImagePreprocessor, TextPreprocessor  # noqa: E402
from encoder.tokenizer import tokenizer_json_for  # noqa: E402
from trainer.data import EpochBatchSampler, PinPairDataset  # noqa: E402
from trainer.dataset import PinRecord, SaveRecord  # noqa: E402
from trainer.neighbors import PinBoardGraph  # noqa: E402


def _png(tmp: Path) -> bytes:
    from PIL import Image

    path = tmp / "x.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path.read_bytes()


def test_collate_flags_shared_boards_and_missing_neighbors(tmp_path: Path) -> None:
    cfg = PinClipConfig.tiny()
    pins = [PinRecord(f"p{i}", f"title {i}", "" if i == 3 else f"desc {i}", "x") for i in range(4)]
    # b1: p0 p1 p2; p3 alone on b9.
    saves = [SaveRecord(p, "b1") for p in ("p0", "p1", "p2")] + [SaveRecord("p3", "b9")]
    graph = PinBoardGraph(saves)
    ds = PinPairDataset(
        pins,
        [_png(tmp_path)] * 4,
        graph,
        ImagePreprocessor(cfg.vision.image_size, cfg.vision.mean, cfg.vision.std, 10**6, 10**6),
        TextPreprocessor(tokenizer_json_for(None), cfg.text.max_length),
        seed=1,
    )
    items = [ds[i] for i in range(4)]
    for anchor, neighbor in items[:3]:
        assert neighbor is not None and neighbor != anchor and neighbor < 3
    assert items[3] == (3, None)
    batch = ds.collate(items)
    assert batch.has_neighbor is not None and batch.has_neighbor.tolist() == [1, 1, 1, 0]
    assert batch.has_description.tolist() == [True, True, True, False]
    assert batch.share_board is not None
    # Anchors 0-2 share b1 with every neighbor drawn from b1; p3 shares nothing except itself.
    assert batch.share_board[:3, :3].all()
    assert batch.share_board[3].tolist() == [False, False, False, True]
    assert batch.pixel_values.shape == (4, 3, cfg.vision.image_size, cfg.vision.image_size)
    assert batch.title_ids.shape == batch.description_ids.shape


def test_batch_sampler_is_seeded_sharded_and_resumable() -> None:
    full = list(EpochBatchSampler(20, 4, seed=5, epoch=2))
    assert len(full) == 5 and sorted(i for b in full for i in b) == list(range(20))
    assert list(EpochBatchSampler(20, 4, seed=5, epoch=2, start_batch=3)) == full[3:]
    assert list(EpochBatchSampler(20, 4, seed=5, epoch=3)) != full
    ranks = [list(EpochBatchSampler(20, 4, seed=5, epoch=2, rank=r, world_size=2)) for r in (0, 1)]
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_an_image_serving_refuses_trains_as_white_instead_of_failing() -> None:
    import io

    from PIL import Image as PILImage

    from encoder.preprocess import ImagePreprocessor
    from trainer.data import load_or_blank

    pre = ImagePreprocessor(32)
    thin = io.BytesIO()
    PILImage.new("RGB", (96, 2), (0, 0, 0)).save(thin, "PNG")
    white = pre.to_array(PILImage.new("RGB", (32, 32), (255, 255, 255)))
    assert (load_or_blank(pre, thin.getvalue(), "thin") == white).all()
    assert (load_or_blank(pre, b"not an image", "junk") == white).all()
