"""What a user gets for free, embedded per pin: every quality report reads against these.

- `random_embeddings`: chance level for the split (boards of very different sizes make it
  well above zero),
- `colour_histogram_embeddings`: image only, no learning — a joint RGB histogram (8 bins per
  channel, transparent pixels on white) with a square root (Hellinger) before L2, so cosine
  similarity is the Bhattacharyya coefficient of the two colour distributions,
- `minilm_text_embeddings`: the off-the-shelf sentence embedding, MiniLM-L6 mean-pooled over
  title + description, L2-normalised (what sentence-transformers gives).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

HISTOGRAM_BINS = 8
HISTOGRAM_SIZE = 64  # pixels; enough for colour statistics, fast


def random_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def colour_histogram(image_bytes: bytes, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as image:
        rgba = image.convert("RGBA")
        rgba.thumbnail((HISTOGRAM_SIZE, HISTOGRAM_SIZE))
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    q = (rgb.reshape(-1, 3).astype(np.int64) * bins) // 256
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = np.bincount(codes, minlength=bins**3).astype(np.float32)
    root = np.sqrt(hist / max(1.0, float(hist.sum())))
    normed: np.ndarray = root / max(1e-12, float(np.linalg.norm(root)))
    return normed


def colour_histogram_embeddings(images: Sequence[bytes]) -> np.ndarray:
    return np.stack([colour_histogram(data) for data in images])


def minilm_text_embeddings(texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """MiniLM-L6 (the packaged weights) mean-pooled over real tokens, L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from encoder.tokenizer import minilm_path

    path = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)
