"""Benchmark vector_store: insert throughput, search latency p50/p99, recall@k vs exact search.

One command:  .venv/bin/python bench/vectors.py              (milvus-lite in a temp dir,
100k vectors, D=256, HNSW)    add --server to use a Milvus server ($PINCLIP_MILVUS_URI when it
is a URL, else http://127.0.0.1:19530), or --uri to name one.

Data: a mixture of Gaussian clusters on the unit sphere (real embeddings are clustered; uniform
random 256-D vectors have no neighbours worth finding and make every index look bad). Queries
come from the same distribution and are not in the collection. Ground truth is exact inner
product in numpy. Everything goes through the public VectorStore API (validation, normalisation
and Strong consistency included), under a unique prefix that is dropped at the end.
Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vector_store import IndexConfig, PinVector, VectorStore, filters

Matrix = npt.NDArray[np.float32]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the collection")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.6, help="cluster noise (vs unit centres)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000, help="rows per upsert call")
    parser.add_argument("--index", default="HNSW", choices=["HNSW", "FLAT", "IVF_FLAT", "IVF_SQ8"])
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", type=int, default=128, help="HNSW search ef")
    parser.add_argument("--consistency", default="Strong")
    parser.add_argument(
        "--index-wait-s", type=float, default=900, help="max wait for the background index build"
    )
    parser.add_argument("--seed", type=int, default=0)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--server", action="store_true", help="use a Milvus server")
    target.add_argument("--uri", help="explicit Milvus URI (local path: milvus-lite)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    return parser.parse_args(argv)


def server_uri() -> str:
    configured = os.environ.get("PINCLIP_MILVUS_URI", "")
    return configured if "://" in configured else "http://127.0.0.1:19530"


def unit_rows(matrix: Matrix) -> Matrix:
    normalised: Matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def clustered(rng: np.random.Generator, n: int, centres: Matrix, spread: float) -> Matrix:
    labels = rng.integers(0, len(centres), size=n)
    noise = rng.normal(scale=spread / np.sqrt(centres.shape[1]), size=(n, centres.shape[1]))
    return unit_rows((centres[labels] + noise).astype(np.float32))


def exact_top_k(data: Matrix, queries: Matrix, k: int) -> list[set[int]]:
    truth: list[set[int]] = []
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ data.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        truth.extend(set(row.tolist()) for row in top)
    return truth


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q))


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    centres = unit_rows(rng.normal(size=(args.clusters, args.dim)).astype(np.float32))
    data = clustered(rng, args.n, centres, args.spread)
    queries = clustered(rng, args.queries, centres, args.spread)
    is_ad = rng.random(args.n) < 0.1

    scratch = None
    if args.server:
        uri = server_uri()
    elif args.uri:
        uri = args.uri
    else:
        scratch = tempfile.TemporaryDirectory(prefix="bench-vectors-")
        uri = str(Path(scratch.name) / "milvus.db")
    tag = uuid.uuid4().hex[:8]
    index = IndexConfig(
        kind=args.index,
        hnsw_m=args.hnsw_m,
        hnsw_ef_construction=args.ef_construction,
        hnsw_ef_search=args.ef,
    )
    store = VectorStore(
        uri,
        alias=f"bench{tag}_alias",
        dim=args.dim,
        consistency=args.consistency,
        prefix=f"bench{tag}_v",
        index=index,
        batch_size=args.batch,
    )
    try:
        store.ensure_version(1)
        pins = [
            PinVector(f"p{i}", data[i], 1, T0, (f"b{i % 5000}",), bool(is_ad[i]))
            for i in range(args.n)
        ]
        started = time.perf_counter()
        for start in range(0, args.n, args.batch):
            store.upsert(1, pins[start : start + args.batch])
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        store.flush(1)
        store.switch_alias(1, expected_count=args.n)
        flush_switch_s = time.perf_counter() - started
        started = time.perf_counter()
        indexed, total = store.index_progress(1)
        while indexed < total and time.perf_counter() - started < args.index_wait_s:
            time.sleep(1.0)  # both backends index in the background; measure the built index
            indexed, total = store.index_progress(1)
        index_wait_s = time.perf_counter() - started

        store.search(queries[0], k=args.k)  # warm-up: first search may load/compile
        # Two passes: the first right after the fill (milvus-lite compacts and re-indexes in a
        # background thread of this very process then), the second at steady state.
        passes: list[list[float]] = []
        for _ in range(2):
            latencies, found = [], []
            for query in queries:
                t = time.perf_counter()
                hits = store.search(query, k=args.k)
                latencies.append(time.perf_counter() - t)
                found.append({int(h.pin_id[1:]) for h in hits})
            passes.append(latencies)
        filtered = []
        for query in queries[:100]:
            t = time.perf_counter()
            store.search(query, k=args.k, filter=filters.is_ad(True))
            filtered.append(time.perf_counter() - t)
        by_pin = []
        for i in range(100):
            t = time.perf_counter()
            store.search_by_pin(f"p{i}", k=args.k)
            by_pin.append(time.perf_counter() - t)

        truth = exact_top_k(data, queries, args.k)
        recall = float(np.mean([len(f & t) / args.k for f, t in zip(found, truth, strict=True)]))
        return {
            "backend": store.backend,
            "uri_kind": "server" if "://" in uri else "lite (temp dir)",
            "n": args.n,
            "dim": args.dim,
            "k": args.k,
            "index": args.index,
            "index_params": index.build_params(),
            "search_params": index.search_params(args.k),
            "consistency": args.consistency,
            "insert_rows_per_s": args.n / insert_s,
            "insert_s": insert_s,
            "flush_and_switch_s": flush_switch_s,
            "index_wait_s": index_wait_s,
            "indexed_rows_at_search": indexed,
            "total_rows_at_search": total,
            "search_first_pass_p50_ms": percentile_ms(passes[0], 50),
            "search_first_pass_p99_ms": percentile_ms(passes[0], 99),
            "search_p50_ms": percentile_ms(passes[1], 50),
            "search_p99_ms": percentile_ms(passes[1], 99),
            "filtered_search_p50_ms": percentile_ms(filtered, 50),
            "filtered_search_p99_ms": percentile_ms(filtered, 99),
            "search_by_pin_p50_ms": percentile_ms(by_pin, 50),
            "search_by_pin_p99_ms": percentile_ms(by_pin, 99),
            f"recall_at_{args.k}": recall,
            "queries": args.queries,
        }
    finally:
        store.purge()
        store.close()
        if scratch is not None:
            scratch.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    result.update(
        command="python bench/vectors.py " + " ".join(sys.argv[1:] if argv is None else argv),
        machine=f"{platform.machine()} {os.cpu_count()} CPU, {platform.python_version()}",
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    rows = [
        ("backend / index", f"{result['backend']} / {result['index']}"),
        ("vectors x dim", f"{result['n']} x {result['dim']}"),
        ("insert (rows/s)", f"{result['insert_rows_per_s']:.0f}"),
        ("flush + switch (s)", f"{result['flush_and_switch_s']:.2f}"),
        (
            "index build wait (s)",
            f"{result['index_wait_s']:.1f} ({result['indexed_rows_at_search']}"
            f"/{result['total_rows_at_search']} rows indexed)",
        ),
        (
            "search 1st pass p50 / p99 (ms)",
            f"{result['search_first_pass_p50_ms']:.2f} / {result['search_first_pass_p99_ms']:.2f}",
        ),
        ("search p50 / p99 (ms)", f"{result['search_p50_ms']:.2f} / {result['search_p99_ms']:.2f}"),
        (
            "filtered p50 / p99 (ms)",
            f"{result['filtered_search_p50_ms']:.2f} / {result['filtered_search_p99_ms']:.2f}",
        ),
        (
            "by pin p50 / p99 (ms)",
            f"{result['search_by_pin_p50_ms']:.2f} / {result['search_by_pin_p99_ms']:.2f}",
        ),
        (f"recall@{args.k} vs exact", f"{result[f'recall_at_{args.k}']:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = args.out / f"vectors-{result['backend']}-{result['index'].lower()}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
