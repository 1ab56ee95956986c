"""Query API benchmark: latency (p50/p99) and throughput of similar-by-id, text search and image
search through the real HTTP API, at several collection sizes, on milvus-lite and the Milvus
server, at Bounded and Strong consistency — plus recall@10 of similar-by-id against brute force
and the hit-hydration choice (one batched Neo4j read vs extra Milvus output fields; the API
answers from the output fields, the rows carrying title and image URI as the stream writes them).

    python bench/api.py                                  # 10k and 100k, lite and server
    python bench/api.py --sizes 2000 --backends lite     # a quick look

Needs the services (`pinclip services up`; PINCLIP_NEO4J_* and PINCLIP_TEST_MILVUS_SERVER_URI
or --server-uri). Vectors are 256-d, clustered, seeded; the encoder is a tiny random model
exported at 256-d (its speed, not its quality, is what the text/image rows measure). The API
runs in a uvicorn thread of this process and the clients share its CPU: on a 2-core machine
the figures include that contention.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import io
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 256
TEXTS = ["red bicycle", "cozy living room", "summer salad recipe", "mountain hike", "wedding cake"]


@dataclasses.dataclass
class Row:
    backend: str
    size: int
    consistency: str
    query: str
    p50_ms: float
    p99_ms: float
    per_s: float
    note: str = ""


def quantiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples) * 1000, [50, 99])
    return float(p50), float(p99)


def clustered_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def export_model(registry: Path) -> None:
    import torch

    from encoder.config import PinClipConfig
    from encoder.export import export_model as export
    from encoder.model import PinClipModel

    torch.manual_seed(0)
    config = dataclasses.replace(PinClipConfig.tiny(), embed_dim=DIM)
    export(PinClipModel(config), registry / "v1", 1)


def query_image() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


# --- data ---------------------------------------------------------------------------------------


def fill_graph(graph: Any, prefix: str, n: int) -> None:
    from graph_store import PinNode, Save

    now = datetime.now(UTC)
    step = 5000
    for start in range(0, n, step):
        ids = [f"{prefix}{i}" for i in range(start, min(n, start + step))]
        graph.upsert_pins(
            [
                PinNode(p, f"pin {p}", "", f"file:///nowhere/{p}.jpg", now, embedded_at=now)
                for p in ids
            ]
        )
        graph.add_saves([Save(p, f"{prefix}b{hash(p) % 500}", f"{prefix}u", now) for p in ids])


def fill_vectors(store: Any, prefix: str, vectors: np.ndarray) -> None:
    from vector_store import PinVector

    now = datetime.now(UTC)
    store.ensure_version(1)
    step = 5000
    for start in range(0, len(vectors), step):
        store.upsert(
            1,
            [
                PinVector(
                    f"{prefix}{i}",
                    vectors[i],
                    1,
                    now,
                    (f"{prefix}b{hash(f'{prefix}{i}') % 500}",),
                    title=f"pin {prefix}{i}",
                    image_uri=f"file:///nowhere/{prefix}{i}.jpg",
                )
                for i in range(start, min(len(vectors), start + step))
            ],
        )
    store.flush(1)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # the server builds the index after the flush
        indexed, total = store.index_progress(1)
        if indexed >= total:
            break
        time.sleep(1)
    store.switch_alias(1)


# --- measuring ----------------------------------------------------------------------------------


def measure(
    call: Callable[[int], Any], queries: int, concurrency: int
) -> tuple[float, float, float]:
    """p50 and p99 of sequential calls, then calls/s with `concurrency` clients."""
    for i in range(min(10, queries)):  # warm-up: connections, model sessions, caches
        call(i)
    latencies = []
    for i in range(queries):
        started = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - started)
    p50, p99 = quantiles(latencies)
    total = max(queries, concurrency * 10)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(total)))
    return p50, p99, total / (time.perf_counter() - started)


def recall_at_10(
    client: httpx.Client, prefix: str, vectors: np.ndarray, samples: int, level: str
) -> float:
    rng = np.random.default_rng(7)
    found = 0
    for i in rng.choice(len(vectors), samples, replace=False):
        scores = vectors @ vectors[i]
        scores[i] = -np.inf
        truth = {f"{prefix}{j}" for j in np.argpartition(-scores, 10)[:10]}
        answer = client.get(f"/pins/{prefix}{i}/similar", params={"k": 10}).json()
        found += len(truth & {h["pin_id"] for h in answer["results"]})
    return found / (10 * samples)


def hydration_rows(
    backend: str, uri: str, size: int, graph: Any, prefix: str, vectors: np.ndarray, queries: int
) -> list[Row]:
    """Same search, hits' title/image/boards from (a) one batched Neo4j read after it, or
    (b) extra output fields of a collection that carries them."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    name = f"hyd{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pin_id", DataType.VARCHAR, is_primary=True, max_length=128)
    schema.add_field("pin", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=1000)
    schema.add_field("image_uri", DataType.VARCHAR, max_length=4096)
    schema.add_field(
        "board_ids", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=256, max_length=128
    )
    index = MilvusClient.prepare_index_params()
    index.add_index(
        "pin", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200}
    )
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Bounded")
    try:
        for start in range(0, size, 5000):
            ids = range(start, min(size, start + 5000))
            client.insert(
                name,
                [
                    {
                        "pin_id": f"{prefix}{i}",
                        "pin": vectors[i].tolist(),
                        "title": f"pin {prefix}{i}",
                        "image_uri": f"file:///nowhere/{prefix}{i}.jpg",
                        "board_ids": [f"{prefix}b{hash(f'{prefix}{i}') % 500}"],
                    }
                    for i in ids
                ],
            )
        client.flush(name)
        client.load_collection(name)
        params = {"metric_type": "IP", "params": {"ef": 128}}

        def search(i: int, fields: list[str]) -> list[str]:
            hits = client.search(
                name,
                [vectors[i % size].tolist()],
                limit=10,
                output_fields=fields,
                search_params=params,
                consistency_level="Bounded",
            )[0]
            return [str(h.id) for h in hits]

        def with_fields(i: int) -> None:
            search(i, ["title", "image_uri", "board_ids"])

        def with_graph(i: int) -> None:
            graph.pins_with_boards(search(i, ["pin_id"]))

        rows = []
        for label, call in (("hits+milvus fields", with_fields), ("hits+neo4j read", with_graph)):
            p50, p99, per_s = measure(call, queries, 4)
            rows.append(Row(backend, size, "Bounded", label, p50, p99, per_s, "store only"))
        return rows
    finally:
        client.drop_collection(name)
        client.close()


def bench_backend(
    backend: str,
    uri: str,
    size: int,
    args: argparse.Namespace,
    graph: Any,
    prefix: str,
    vectors: np.ndarray,
    registry: Path,
    workdir: Path,
) -> list[Row]:
    from pinclip.api import ApiConfig, ApiDeps, VersionedEncoders, create_api
    from pinclip.api.images import ContentImageSource
    from pinclip.api.serve import BackgroundServer
    from vector_store import VectorStore

    tag = f"bapi{uuid.uuid4().hex[:6]}"
    store = VectorStore(uri, alias=f"{tag}_pins", dim=DIM, prefix=f"{tag}_v", consistency="Bounded")
    rows: list[Row] = []
    try:
        started = time.perf_counter()
        fill_vectors(store, prefix, vectors)
        print(f"  {backend} {size}: filled and indexed in {time.perf_counter() - started:.0f} s")
        image = query_image()
        for level in args.levels:
            config = ApiConfig(
                consistency_search=level, consistency_similar=level, consistency_lookup=level
            )
            deps = ApiDeps(
                vectors=store,
                graph=graph,
                encoders=VersionedEncoders(str(registry), workdir / "cache", "cpu"),
                images=ContentImageSource(),
            )
            queries = args.queries if level != "Strong" else args.strong_queries
            with (
                BackgroundServer(create_api(deps, config)) as server,
                httpx.Client(base_url=server.url, timeout=60) as client,
            ):
                calls: dict[str, Callable[[int], Any]] = {
                    "similar-by-id": lambda i: client.get(
                        f"/pins/{prefix}{(i * 7919) % size}/similar", params={"k": 10}
                    ).raise_for_status(),
                    "text search": lambda i: client.get(
                        "/search/text", params={"q": TEXTS[i % len(TEXTS)], "k": 10}
                    ).raise_for_status(),
                    "image search": lambda i: client.post(
                        "/search/image",
                        content=image,
                        params={"k": 10},
                        headers={"Content-Type": "image/jpeg"},
                    ).raise_for_status(),
                }
                for name, call in calls.items():
                    concurrency = 4 if name == "image search" else args.concurrency
                    p50, p99, per_s = measure(call, queries, concurrency)
                    note = ""
                    if name == "similar-by-id":
                        recall = recall_at_10(client, prefix, vectors, args.recall_samples, level)
                        note = f"recall@10 {recall:.3f}"
                    rows.append(Row(backend, size, level, name, p50, p99, per_s, note))
                    figures = f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {per_s:6.0f}/s"
                    print(f"    {level:8} {name:14} {figures} {note}")
        if args.staleness_trials:
            rows += staleness_rows(backend, store, size, args.staleness_trials)
        if args.hydration:
            rows += hydration_rows(backend, uri, size, graph, prefix, vectors, args.queries)
    finally:
        store.purge()
        store.close()
    return rows


def staleness_rows(backend: str, store: Any, size: int, trials: int) -> list[Row]:
    """How long after an acknowledged upsert a read finds the new row, per level: the price of
    Bounded (a window of staleness) against Strong (a wait on every read)."""
    from vector_store import PinVector

    rows = []
    rng = np.random.default_rng(3)
    for level in ("Bounded", "Strong"):
        waits = []
        for _ in range(trials):
            pin_id = f"stale-{uuid.uuid4().hex[:8]}"
            vector = rng.normal(size=DIM).astype(np.float32)
            store.upsert(1, [PinVector(pin_id, vector, 1, datetime.now(UTC))])
            started = time.perf_counter()
            while not store.get([pin_id], 1, level) and time.perf_counter() - started < 30:
                time.sleep(0.01)
            waits.append(time.perf_counter() - started)
            store.delete([pin_id], 1)
        p50, p99 = quantiles(waits)
        rows.append(
            Row(
                backend,
                size,
                level,
                "write → visible",
                p50,
                p99,
                0.0,
                f"max {max(waits) * 1000:.0f} ms",
            )
        )
        print(f"    {level:8} write → visible  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    return rows


def print_table(rows: list[Row]) -> None:
    header = "| backend | pins | consistency | query | p50 ms | p99 ms | per s | note |"
    print("\n" + header + "\n|---|---:|---|---|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r.backend} | {r.size:,} | {r.consistency} | {r.query} | {r.p50_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.per_s:.0f} | {r.note} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="lite,server")
    parser.add_argument("--levels", default="Bounded,Strong")
    parser.add_argument("--queries", type=int, default=300, help="sequential calls per cell")
    parser.add_argument("--strong-queries", type=int, default=40, help="... at Strong")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--recall-samples", type=int, default=100)
    parser.add_argument("--no-hydration", dest="hydration", action="store_false")
    parser.add_argument("--staleness-trials", type=int, default=20, help="0: skip")
    parser.add_argument(
        "--server-uri",
        default=os.environ.get("PINCLIP_TEST_MILVUS_SERVER_URI", "http://127.0.0.1:19530"),
    )
    args = parser.parse_args()
    args.levels = [level for level in args.levels.split(",") if level]

    from graph_store import GraphStore
    from pinclip.logging import configure_logging

    configure_logging(level="WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    registry = workdir / "registry"
    export_model(registry)
    graph = GraphStore(
        os.environ.get("PINCLIP_NEO4J_URI", "bolt://127.0.0.1:7687"),
        os.environ.get("PINCLIP_NEO4J_USER", "neo4j"),
        os.environ.get("PINCLIP_NEO4J_PASSWORD", ""),
    )
    graph.ensure_schema()
    rows: list[Row] = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            prefix = f"bapi{uuid.uuid4().hex[:6]}-"
            vectors = clustered_vectors(size)
            started = time.perf_counter()
            fill_graph(graph, prefix, size)
            print(f"{size} pins: Neo4j filled in {time.perf_counter() - started:.0f} s")
            try:
                for backend in args.backends.split(","):
                    uri = str(workdir / f"lite-{size}.db") if backend == "lite" else args.server_uri
                    rows += bench_backend(
                        backend, uri, size, args, graph, prefix, vectors, registry, workdir
                    )
            finally:
                graph.delete_by_prefix(prefix)
    finally:
        graph.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
