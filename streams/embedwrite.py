"""The one embed-and-write path: pins (content + image bytes) in, rows in Neo4j and Milvus out.

The worker (new pins from Kafka), the backfill (every pin of the graph, re-embedded by a new
model) and therefore the demo all go through `EmbedWritePath`, so they decode the same way,
batch the same way, write the same node and the same Milvus row, and follow the same error
contract — an improvement here reaches all of them. One batch:

1. decode  — image bytes → pixels with each model's own preprocessing (once per distinct
   preprocessing), in `streams.decode.Decoder`'s pool; a rejected image fails that pin alone;
2. encode  — one onnxruntime call per target model version for the whole batch;
3. graph   — every pin (and its first save) in one Neo4j transaction, coalesced with the other
   writes in flight (`GraphWriter`); the transaction returns each pin's boards;
4. vectors — one upsert per target version, split into requests of at most
   `max_request_bytes`, each row carrying the boards the graph returned.

Errors follow `streams.errors.classify` through `streams.retry` (rel's contract, not forked):
transient → retried with backoff, the batch waits; deterministic → that pin alone fails and is
returned in `Written.failed` (the worker dead-letters it, the backfill records it); fatal →
raised. `encode` and `write` are separate so a caller can overlap the encode of one batch with
the writes of the previous one (the worker does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from streams import stages
from streams.decode import Decoder
from streams.errors import DeterministicError
from streams.events import NewPin, utc_now
from streams.graph_writes import GraphWriter
from streams.pipeline import RetryPolicy
from streams.ports import BatchEmbedder, GraphSink, VectorSink
from streams.retry import isolate_refused, retry_transient

if TYPE_CHECKING:  # annotations only: vector_store loads pymilvus, imported where rows are built
    from graph_store.models import PinNode, Save
    from vector_store.records import PinVector

T = TypeVar("T")
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024  # well under gRPC's and Milvus's message caps


@dataclass(frozen=True)
class PinRecord:
    """A pin on its way to the stores: the one shape the worker (from a NewPin) and the backfill
    (from a graph node) both fill, and from which the Neo4j node, its first save and the Milvus
    row are all derived — so whoever writes a pin writes the same data."""

    pin_id: str
    title: str
    description: str
    image_uri: str
    created_at: datetime
    user_id: str | None = None
    is_ad: bool = False
    board_id: str | None = None  # the board it was created on (a new pin's first save)
    streamed: bool = False  # a new pin from the stream (its first write sets embedded_at)

    @classmethod
    def from_new_pin(cls, pin: NewPin, image_uri: str) -> PinRecord:
        return cls(
            pin.pin_id,
            pin.title,
            pin.description,
            image_uri,
            pin.created_at,
            pin.user_id,
            pin.is_ad,
            pin.board_id,
            streamed=True,
        )

    @classmethod
    def from_node(cls, node: PinNode, default_created_at: datetime) -> PinRecord:
        """A stored graph_store.PinNode (for re-embedding); its edges are already there."""
        return cls(
            node.pin_id,
            node.title or "",
            node.description or "",
            node.image_uri or "",
            node.created_at or default_created_at,
            node.user_id,
            bool(node.is_ad),
        )

    def node(self, written_at: datetime | None = None) -> PinNode:
        """The graph node; a streamed pin's carries `written_at` as its embedded_at (the graph
        keeps the first one), a re-embedded pin's leaves it as it was."""
        from graph_store import PinNode

        return PinNode(
            self.pin_id,
            self.title,
            self.description,
            self.image_uri,
            self.created_at,
            self.user_id,
            self.is_ad,
            embedded_at=written_at if self.streamed else None,
        )

    def first_save(self) -> Save | None:
        from graph_store import Save

        if self.board_id is None or self.user_id is None:
            return None
        return Save(self.pin_id, self.board_id, self.user_id, self.created_at)

    def vector_row(self, version: int, vector: np.ndarray, boards: Sequence[str]) -> PinVector:
        from vector_store import PinVector

        return PinVector(
            self.pin_id,
            vector,
            version,
            self.created_at,
            tuple(boards),
            self.is_ad,
            title=self.title,
            image_uri=self.image_uri,
        )


@dataclass(frozen=True)
class PinJob:
    """One pin to embed and write; `source` is the caller's handle (e.g. its Kafka record)."""

    record: PinRecord
    image: bytes
    source: Any = None


Failure = tuple[PinJob, DeterministicError]


@dataclass
class Encoded:
    """A batch after decode + encode: the jobs that made it and their pin vectors per version."""

    jobs: list[PinJob]
    vectors: dict[int, np.ndarray]  # version → float32 [len(jobs), D]
    failed: list[Failure] = field(default_factory=list)


@dataclass
class Written:
    """A batch after the writes: pins in every target version's collection, and the failures."""

    jobs: list[PinJob]
    versions: tuple[int, ...]
    failed: list[Failure]
    written_at: datetime


def row_bytes(row: PinVector) -> int:
    """Rough size of a Milvus row on the wire (vector, id, boards, content, scalars)."""
    boards = sum(len(b) + 8 for b in row.board_ids)
    return 4 * len(row.pin) + len(row.pin_id) + boards + len(row.title) + len(row.image_uri) + 64


def chunks_by_bytes(rows: Sequence[T], max_bytes: int, size: Callable[[T], int]) -> list[list[T]]:
    """Consecutive chunks whose summed `size` stays under `max_bytes` (at least one row each)."""
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for row in rows:
        cost = size(row)
        if current and used + cost > max_bytes:
            chunks.append(current)
            current, used = [], 0
        current.append(row)
        used += cost
    if current:
        chunks.append(current)
    return chunks


class EmbedWritePath:
    """Decode → encode → Neo4j → Milvus for batches of pins (see the module docstring)."""

    def __init__(
        self,
        vectors: VectorSink,
        graph: GraphSink,
        *,
        decoder: Decoder | None = None,
        policy: RetryPolicy | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        graph_writer: GraphWriter | None = None,
    ) -> None:
        """`graph_writer`: one shared with other writers of the graph (the worker's repins),
        so their writes coalesce; its owner closes it. Without it the path has its own."""
        self.vectors = vectors
        self.policy = policy or RetryPolicy()
        self.decoder = decoder or Decoder()
        self._owns_graph = graph_writer is None
        self.graph = graph_writer or GraphWriter(graph, self.policy)
        self.max_request_bytes = max_request_bytes
        self._milvus_pool = ThreadPoolExecutor(2, thread_name_prefix="milvus")

    async def run(self, jobs: Sequence[PinJob], encoders: Mapping[int, BatchEmbedder]) -> Written:
        return await self.write(await self.encode(jobs, encoders))

    # --- decode + encode ----------------------------------------------------------------------

    async def encode(
        self, jobs: Sequence[PinJob], encoders: Mapping[int, BatchEmbedder]
    ) -> Encoded:
        """Pixels once per distinct preprocessing, then one encoder call per version."""
        jobs = list(jobs)
        decoded: dict[Hashable, list[Any]] = {}
        key_of: dict[int, Hashable] = {}
        for version, encoder in encoders.items():
            key = getattr(encoder, "preprocess_key", version)
            key_of[version] = key
            if key not in decoded:
                images = [job.image for job in jobs]
                decoded[key] = await self.decoder.decode(encoder.image_preprocessor(), images)
        failures: dict[int, DeterministicError] = {}
        for results in decoded.values():
            for i, result in enumerate(results):
                if isinstance(result, DeterministicError):
                    failures.setdefault(i, result)
        keep = [i for i in range(len(jobs)) if i not in failures]
        vectors: dict[int, np.ndarray] = {}
        for version, encoder in encoders.items():
            pixels = [decoded[key_of[version]][i] for i in keep]
            done, refused = await self._encode(encoder, keep, pixels, jobs)
            vectors[version] = done
            failures.update(refused)
        ok = [i for i in keep if i not in failures]
        position = {i: p for p, i in enumerate(keep)}
        rows = [position[i] for i in ok]
        return Encoded(
            [jobs[i] for i in ok],
            {v: array[rows] for v, array in vectors.items()},
            [(jobs[i], failures[i]) for i in sorted(failures)],
        )

    async def _encode(
        self,
        encoder: BatchEmbedder,
        indices: list[int],
        pixels: list[np.ndarray],
        jobs: list[PinJob],
    ) -> tuple[np.ndarray, dict[int, DeterministicError]]:
        """Vectors for `indices` (rows of failed ones are zero), and the pins refused."""
        out = np.zeros((len(indices), encoder.dim), dtype=np.float32)
        if not indices:
            return out, {}
        at = {index: row for row, index in enumerate(indices)}

        async def attempt(subset: list[int]) -> None:
            batch = np.stack([pixels[at[i]] for i in subset])
            titles = [jobs[i].record.title for i in subset]
            descriptions = [jobs[i].record.description for i in subset]
            started = time.perf_counter()
            result = await retry_transient(
                lambda: encoder.embed_pixels(batch, titles, descriptions),
                sink="encoder",
                policy=self.policy,
                pins=len(subset),
            )
            stages.record("encode", len(subset), time.perf_counter() - started)
            out[[at[i] for i in subset]] = result

        refused = await isolate_refused(indices, attempt, stage="encode")
        return out, dict(refused)

    # --- writes -------------------------------------------------------------------------------

    async def write(self, encoded: Encoded) -> Written:
        """Neo4j first (it returns the boards), then every version's collection concurrently."""
        versions = tuple(sorted(encoded.vectors))
        failed = list(encoded.failed)
        if not encoded.jobs:
            return Written([], versions, failed, utc_now())
        records = [job.record for job in encoded.jobs]
        saves = [s for s in (r.first_save() for r in records) if s is not None]
        now = utc_now()
        boards, refused = await self.graph.write([r.node(now) for r in records], saves)
        good = [i for i, r in enumerate(records) if r.pin_id not in refused]
        per_version = await asyncio.gather(
            *(
                self._upsert(
                    v,
                    [
                        records[i].vector_row(
                            v, encoded.vectors[v][i], boards.get(records[i].pin_id, ())
                        )
                        for i in good
                    ],
                )
                for v in versions
            )
        )
        for refusals in per_version:
            refused = {**refusals, **refused}
        written = []
        for job in encoded.jobs:
            why = refused.get(job.record.pin_id)
            if why is None:
                written.append(job)
            else:
                failed.append((job, why))
        return Written(written, versions, failed, utc_now())

    async def _upsert(self, version: int, rows: list[PinVector]) -> dict[str, DeterministicError]:
        """Upsert one version's rows in byte-capped requests; returns the rows refused."""
        refused: dict[str, DeterministicError] = {}
        for chunk in chunks_by_bytes(rows, self.max_request_bytes, row_bytes):
            for row, why in await isolate_refused(chunk, self._upsert_attempt(version)):
                refused[row.pin_id] = why
        return refused

    def _upsert_attempt(self, version: int) -> Callable[[list[PinVector]], Awaitable[None]]:
        loop = asyncio.get_running_loop()

        def upsert(rows: list[PinVector]) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            self.vectors.upsert(version, rows)
            stages.record(
                "milvus_write", len(rows), time.perf_counter() - wall, time.thread_time() - cpu
            )

        async def attempt(rows: list[PinVector]) -> None:
            await retry_transient(
                lambda: loop.run_in_executor(self._milvus_pool, upsert, rows),
                sink="milvus",
                policy=self.policy,
                version=version,
                rows=len(rows),
            )

        return attempt

    async def close(self) -> None:
        if self._owns_graph:
            await self.graph.close()
        self.decoder.close()
        self._milvus_pool.shutdown(wait=False)
