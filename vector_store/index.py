"""Index choice and its build/search parameters, as plain data.

Kinds offered are the ones both milvus-lite 3.2.2 and the 2.3.5 server build (IVF_PQ, DISKANN and
SCANN fail on lite in a background thread while still being reported). Lite ignores the
parameters; the server requires them for HNSW, so they are always sent.
Metric is IP: rows and queries are L2-normalised, so IP ranks exactly like cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

IndexKind = Literal["HNSW", "FLAT", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX"]
METRIC = "IP"


@dataclass(frozen=True)
class IndexConfig:
    """Build and search knobs. Defaults favour recall at ~100k vectors on a small machine."""

    kind: IndexKind = "HNSW"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32

    def __post_init__(self) -> None:
        if self.kind not in ("HNSW", "FLAT", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX"):
            raise ValueError(f"unsupported index kind {self.kind!r}")
        if min(self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search) < 1:
            raise ValueError("HNSW parameters must be positive")
        if min(self.ivf_nlist, self.ivf_nprobe) < 1:
            raise ValueError("IVF parameters must be positive")

    def build_params(self) -> dict[str, Any]:
        if self.kind == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        if self.kind in ("IVF_FLAT", "IVF_SQ8"):
            return {"nlist": self.ivf_nlist}
        return {}

    def search_params(self, k: int) -> dict[str, Any]:
        """Per-query parameters; HNSW's ef must be at least k or the server rejects the query."""
        params: dict[str, Any] = {}
        if self.kind == "HNSW":
            params["ef"] = max(self.hnsw_ef_search, k)
        elif self.kind in ("IVF_FLAT", "IVF_SQ8"):
            params["nprobe"] = min(self.ivf_nprobe, self.ivf_nlist)
        return {"metric_type": METRIC, "params": params}
