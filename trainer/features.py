"""Per-dataset feature caches: decode every image once, run the frozen text tower once.

Profiling the `minilm` preset showed where a step went: most of it in the pretrained MiniLM
tower (for the pin text, the title and the description of anchor *and* neighbor) and in
decoding and resizing PNGs — both of which give the same answer every epoch once the text tower
is frozen. So, once per dataset:

- images → the exact float arrays serving computes (`ImagePreprocessor`), kept as float16,
- pin text → the frozen tower's token states [L, W] (for the fusion) and mean-pooled vectors
  for title and description (for the alignment losses).

Both are also saved under `cache_dir` (keyed by a hash of everything that could change them),
so the next run on the same dataset — another seed, the ablation — starts at once.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
import torch
from torch import Tensor

from encoder.bank_tower import BankTower
from encoder.image_features import FeatureBankTower
from encoder.model import PinClipModel
from encoder.preprocess import pin_text
from encoder.towers import tower_width
from trainer.augment import augment
from trainer.data import load_or_blank
from trainer.dataset import Dataset, PinRecord

log = structlog.get_logger("trainer.features")
TEXT_BATCH = 128


@dataclass
class PinFeatures:
    """Row i describes pin i of the training pin list.

    `pixels` are the images as serving normalises them — or, for the feature-bank tower
    (`encoder.image_features`), its fixed bank output: [V, N, D], view 0 the image as served
    and views 1… augmented copies (random zoom, shift, flip), so augmentation survives caching.
    """

    pixels: Tensor  # float16 [N, 3, S, S] or, for a feature-bank tower, [V, N, D]
    text_tokens: Tensor | None = None  # float16 [N, L, W]: frozen text tower on pin text
    text_mask: Tensor | None = None  # int64 [N, L]
    title: Tensor | None = None  # float32 [N, W]: pooled frozen title
    description: Tensor | None = None  # float32 [N, W]
    has_description: Tensor | None = None  # bool [N]


def text_tower_frozen(model: PinClipModel) -> bool:
    return all(not p.requires_grad for p in model.text.parameters())


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def image_features(
    model: PinClipModel, dataset: Dataset, pins: Sequence[PinRecord], cache_dir: Path | None
) -> Tensor:
    v = model.config.vision
    key = _key(
        "images",
        dataset.root,
        dataset.meta,
        [(p.pin_id, p.image) for p in pins],
        v.image_size,
        v.mean,
        v.std,
    )
    path = cache_dir / f"images-{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        return torch.from_numpy(np.load(path))
    pre = model.image_preprocessor()
    pixels = np.stack(
        [load_or_blank(pre, dataset.read_image_bytes(p), p.pin_id) for p in pins]
    ).astype(np.float16)
    if path is not None:
        _save(path, pixels)
    log.info("features.images", pins=len(pins), size=v.image_size, cached=path is not None)
    return torch.from_numpy(pixels)


@torch.no_grad()
def text_features(
    model: PinClipModel, pins: Sequence[PinRecord], cache_dir: Path | None
) -> dict[str, Tensor]:
    """Token states of pin text and pooled title/description from the frozen text tower."""
    pre = model.text_preprocessor()
    texts = [pin_text(p.title, p.description) for p in pins]
    titles = [p.title or p.description for p in pins]
    descriptions = [p.description or p.title for p in pins]
    key = _key(
        "text",
        model.config.text,
        model.tokenizer_json[-4096:],
        len(model.tokenizer_json),
        texts,
        titles,
        descriptions,
        _weights_digest(model),
    )
    path = cache_dir / f"text-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as saved:
            return {k: torch.from_numpy(saved[k]) for k in saved.files}
    was_training = model.text.training
    model.text.eval()
    # Pad to the longest pin text of the dataset, not max_length: short texts, small cache.
    lengths = [int(m.sum()) for m in (pre.encode([t])[1] for t in texts)] if texts else [1]
    length = max(lengths)
    # Batches of similar length: padding to each batch's longest row is then nearly free.
    order = sorted(range(len(pins)), key=lambda i: lengths[i])
    width = tower_width(model.text)
    tokens = torch.zeros(len(pins), length, width, dtype=torch.float16)
    masks = torch.zeros(len(pins), length, dtype=torch.int64)
    titles_out = torch.zeros(len(pins), width)
    desc_out = torch.zeros(len(pins), width)
    for start in range(0, len(pins), TEXT_BATCH):
        rows = order[start : start + TEXT_BATCH]
        ids, mask = pre.encode([texts[i] for i in rows])
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        states = model.text_tokens(ids_t, mask_t)
        tokens[rows, : states.shape[1]] = states.half()
        masks[rows, : states.shape[1]] = mask_t
        titles_out[rows] = _pooled(model, pre, [titles[i] for i in rows])
        desc_out[rows] = _pooled(model, pre, [descriptions[i] for i in rows])
    model.text.train(was_training)
    out = {
        "text_tokens": tokens,
        "text_mask": masks,
        "title": titles_out,
        "description": desc_out,
        "has_description": torch.tensor([bool(p.description.strip()) for p in pins]),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: v.numpy() for k, v in out.items()})  # type: ignore[arg-type]
        tmp.replace(path)
    log.info("features.text", pins=len(pins), cached=path is not None)
    return out


def _pooled(model: PinClipModel, pre: object, texts: Sequence[str]) -> Tensor:
    ids, mask = pre.encode(texts)  # type: ignore[attr-defined]
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    return model.pool_text(model.text_tokens(ids_t, mask_t), mask_t).float()


def _weights_digest(model: PinClipModel) -> str:
    """A cheap fingerprint of the text tower's weights (first and last tensors)."""
    params = list(model.text.parameters())
    digest = hashlib.sha256()
    for p in (params[0], params[-1]):
        digest.update(p.detach().float().numpy().tobytes()[:65536])
    return digest.hexdigest()[:16]


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


BANK_VIEWS = 4  # the image as served + 3 augmented views, computed once per dataset


@torch.no_grad()
def bank_features(
    tower: BankTower, pixels: Tensor, fit_rows: int, key: str, cache_dir: Path | None
) -> Tensor:
    """Fits the tower's dictionary and whitening on the first `fit_rows` images (the training
    pins), then computes its bank for every image in BANK_VIEWS views: [V, N, D] float16.
    The fitted buffers are cached with the features (same key)."""
    path = cache_dir / f"bank-{key}.pt" if cache_dir else None
    fixed = [n for n, _ in tower.named_buffers()]
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        for name, value in saved["buffers"].items():
            tower.get_buffer(name).copy_(value)
        return saved["bank"]  # type: ignore[no-any-return]
    tower.fit(pixels[:fit_rows], seed=0)
    generator = torch.Generator().manual_seed(0)
    views = []
    for view in range(BANK_VIEWS):
        rows = []
        for start in range(0, len(pixels), 256):
            chunk = pixels[start : start + 256].float()
            if view:
                chunk = augment(chunk, generator)
            rows.append(tower.bank(chunk).half())
        views.append(torch.cat(rows))
    bank = torch.stack(views)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        buffers = {n: tower.get_buffer(n).clone() for n in fixed}
        torch.save({"buffers": buffers, "bank": bank}, tmp)
        tmp.replace(path)
    log.info("features.bank", pins=len(pixels), views=BANK_VIEWS, dim=bank.shape[-1])
    return bank


def build_features(
    model: PinClipModel,
    dataset: Dataset,
    pins: Sequence[PinRecord],
    cache_dir: Path | None,
    fit_rows: int | None = None,
) -> PinFeatures:
    """Features of `pins`; a feature-bank tower is fitted on the first `fit_rows` of them
    (default all: the training pins; validation pins may follow them).

    Decoded images and the frozen text tower's outputs are computed for *every* pin of the
    dataset and cached once, so each seed's split, the ablation and a retrain reuse them; the
    bank is fitted per split (on its training pins only) and cached under its own key.
    """
    row = {p.pin_id: i for i, p in enumerate(dataset.pins)}
    take = torch.tensor([row[p.pin_id] for p in pins], dtype=torch.long)
    if isinstance(model.vision, BankTower) and model.vision.split_independent:
        features = PinFeatures(pixels=stem_features(model, dataset, cache_dir)[:, take])
        return _with_text(features, model, dataset, take, cache_dir)
    pixels = image_features(model, dataset, dataset.pins, cache_dir)[take]
    if isinstance(model.vision, FeatureBankTower):
        fit = len(pins) if fit_rows is None else fit_rows
        key = _key(
            "bank", model.config.vision, dataset.root, dataset.meta,
            [(p.pin_id, p.image) for p in pins], fit, BANK_VIEWS,
        )  # fmt: skip
        pixels = bank_features(model.vision, pixels, fit, key, cache_dir)
    return _with_text(PinFeatures(pixels=pixels), model, dataset, take, cache_dir)


def _with_text(
    features: PinFeatures,
    model: PinClipModel,
    dataset: Dataset,
    take: Tensor,
    cache_dir: Path | None,
) -> PinFeatures:
    if text_tower_frozen(model):
        for name, value in text_features(model, dataset.pins, cache_dir).items():
            setattr(features, name, value[take])
    return features


STEM_CHUNK = 64  # images decoded and run through the frozen stem at a time


@torch.no_grad()
def stem_features(model: PinClipModel, dataset: Dataset, cache_dir: Path | None) -> Tensor:
    """A frozen pretrained stem's output for every image of the dataset in BANK_VIEWS views:
    [V, N, D] float16. Nothing in it is fitted, so one cache serves every split and seed.

    Images are decoded a chunk at a time and never kept: at 224 px the decoded dataset would
    be gigabytes, the stem's output is a tenth of that."""
    tower = model.vision
    assert isinstance(tower, BankTower)
    pins = dataset.pins
    v = model.config.vision  # only what changes the frozen part: not the trained widths
    key = _key(
        "stem", v.backbone, v.image_size, v.mean, v.std, dataset.root, dataset.meta,
        [(p.pin_id, p.image) for p in pins], BANK_VIEWS,
    )  # fmt: skip
    path = cache_dir / f"stem-{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        return torch.from_numpy(np.load(path))
    pre = model.image_preprocessor()
    generator = torch.Generator().manual_seed(0)
    run_bank = _onnx_bank(tower, model.config.vision.image_size)
    out: np.ndarray | None = None
    for start in range(0, len(pins), STEM_CHUNK):
        chunk = pins[start : start + STEM_CHUNK]
        pixels = torch.from_numpy(
            np.stack([load_or_blank(pre, dataset.read_image_bytes(p), p.pin_id) for p in chunk])
        )
        for view in range(BANK_VIEWS):
            view_pixels = augment(pixels, generator) if view else pixels
            bank = run_bank(view_pixels.numpy()).astype(np.float16)
            if out is None:
                out = np.empty((BANK_VIEWS, len(pins), bank.shape[1]), dtype=np.float16)
            out[view, start : start + len(chunk)] = bank
        if start // STEM_CHUNK % 10 == 0:
            log.info("features.stem", done=start + len(chunk), pins=len(pins))
    if out is None:
        out = np.zeros((BANK_VIEWS, 0, 1), dtype=np.float16)
    if path is not None:
        _save(path, out)
    log.info("features.stem", pins=len(pins), views=BANK_VIEWS, dim=out.shape[-1])
    return torch.from_numpy(out)


class _BankModule(torch.nn.Module):
    def __init__(self, tower: BankTower) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.tower.bank(pixel_values)


def _onnx_bank(tower: BankTower, image_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """The fixed part run by ONNX Runtime, as serving runs it: on two cores MobileNetV2 is
    ~5x faster there than in eager torch (depthwise convolutions), and the cache then holds
    exactly the numbers the exported tower computes."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="pinclip-bank-") as scratch:
        path = Path(scratch) / "bank.onnx"
        example = torch.zeros(2, 3, image_size, image_size)
        was_training = tower.training
        tower.eval()
        batch = {0: "batch"}
        torch.onnx.export(
            _BankModule(tower), (example,), str(path), input_names=["pixel_values"],
            output_names=["bank"], dynamic_axes={"pixel_values": batch, "bank": batch},
            opset_version=17, dynamo=False,
        )  # fmt: skip
        tower.train(was_training)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())

    def run(pixels: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {"pixel_values": pixels.astype(np.float32)})[0]
        return out

    return run
