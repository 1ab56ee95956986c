"""Retrieval metrics, numpy only, so they are checked on hand-made cases.

Recall@K here is |relevant ∩ top-K| / min(K, |relevant|): 1.0 means the top K is as full of
relevant items as it can be, whatever the size of the relevant set (giant boards would
otherwise cap plain recall far below 1). MRR uses the rank of the first relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_candidates(queries: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top-k candidates per query by dot product (embeddings are normalised)."""
    scores = queries.astype(np.float32) @ candidates.astype(np.float32).T
    k = min(k, candidates.shape[0])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def first_relevant_rank(
    queries: np.ndarray, candidates: np.ndarray, relevant: Sequence[set[int]]
) -> np.ndarray:
    """1-based rank of the best-scored relevant candidate for each query (full ranking)."""
    scores = queries.astype(np.float32) @ candidates.astype(np.float32).T
    ranks = np.empty(len(relevant), dtype=np.int64)
    for i, rel in enumerate(relevant):
        best = max(scores[i, j] for j in rel)
        ranks[i] = 1 + int((scores[i] > best).sum())
    return ranks


def retrieval_metrics(
    queries: np.ndarray,
    candidates: np.ndarray,
    relevant: Sequence[set[int]],
    ks: Sequence[int] = (1, 10, 50),
) -> dict[str, float]:
    """Mean Recall@K for each K and MRR over queries with a non-empty relevant set."""
    keep = [i for i, rel in enumerate(relevant) if rel]
    if not keep:
        raise ValueError("no query has a relevant candidate")
    q = queries[keep]
    rel = [relevant[i] for i in keep]
    top = rank_candidates(q, candidates, max(ks))
    out: dict[str, float] = {}
    for k in ks:
        hits = [len(rel[i] & set(top[i, :k].tolist())) / min(k, len(rel[i])) for i in range(len(q))]
        out[f"recall@{k}"] = float(np.mean(hits))
    out["mrr"] = float(np.mean(1.0 / first_relevant_rank(q, candidates, rel)))
    out["queries"] = float(len(q))
    return out
