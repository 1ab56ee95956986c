"""Backfill: re-embed every pin with model N into `pins_v<N>`, then move the alias.

Order of operations (the no-mixed-versions rule): the collection fills while queries keep
hitting the old version through the alias; only when the fill is verified does the alias move,
in one call; then the promotion is announced so workers drop the old model.

Resumable: after each batch the last pin_id written is checkpointed under the state dir;
`iter_pins` pages in pin_id order, so a restarted run skips everything up to it. Upserts are
idempotent, so re-doing the batch that was in flight at a crash is harmless.

Every pin goes through the stream's embed-and-write path (`streams.embedwrite`): the same
decode, batching, Neo4j + Milvus rows (boards from the graph) and error contract as a new pin
in the worker, with the encode of one batch overlapping the writes of the previous one.

No pin left behind while the stream runs (`writers`, streams.writers): the graph is read only
once every worker of the group writes the candidate too, and that is checked again before the
alias moves — otherwise a pin a worker writes to the live version only, behind the backfill's
cursor, would be missing from the new one.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from streams.embedwrite import EmbedWritePath, Encoded, PinJob, PinRecord
from streams.errors import DeterministicError, as_deterministic, classify
from streams.ports import BatchEmbedder
from streams.writers import WriterCheck, wait_for_writers
from trainer.progress import progress_bar

if TYPE_CHECKING:
    from graph_store import GraphStore, PinNode
    from streams.content import FetchPolicy
    from vector_store.backend import VectorVersions

log = structlog.get_logger("backfill")


@dataclass
class BackfillState:
    version: int
    last_pin_id: str = ""
    embedded: int = 0
    failed: list[str] = field(default_factory=list)
    done: bool = False

    @classmethod
    def load(cls, path: Path, version: int) -> BackfillState:
        if not path.exists():
            return cls(version=version)
        data = json.loads(path.read_text())
        state = cls(**data)
        if state.version != version:
            raise ValueError(f"{path} belongs to version {state.version}, not {version}")
        return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


@dataclass
class BackfillReport:
    version: int
    embedded: int
    failed: int
    collection_count: int
    switched: bool
    resumed_from: str


def state_path(state_dir: Path, version: int, id_prefix: str = "") -> Path:
    suffix = f"-{id_prefix}" if id_prefix else ""
    return state_dir / "backfill" / f"v{version}{suffix}.json"


async def load_images(
    pins: Sequence[PinNode], load: Callable[[str], Awaitable[bytes]]
) -> list[bytes | DeterministicError]:
    """Each pin's image from the URI kept in the graph; one that cannot be had fails that pin
    (stage fetch), a bug propagates — the worker's rule for fetches."""

    async def one(uri: str | None) -> bytes | DeterministicError:
        if not uri:
            return DeterministicError("fetch", "no_image", "the pin has no image URI")
        try:
            return await load(uri)
        except Exception as exc:
            if classify(exc) == "fatal":
                raise
            return as_deterministic(exc, "fetch")

    return list(await asyncio.gather(*(one(p.image_uri) for p in pins)))


async def encode_nodes(
    path: EmbedWritePath,
    version: int,
    encoder: BatchEmbedder,
    nodes: Sequence[PinNode],
    images: Sequence[bytes | DeterministicError],
) -> Encoded:
    """Graph nodes and their images through the embed path's encode step; a pin whose image
    could not be had is a failure of the batch, not an error."""
    now = datetime.now(UTC)
    jobs, failed = [], []
    for node, image in zip(nodes, images, strict=True):
        record = PinRecord.from_node(node, now)
        if isinstance(image, DeterministicError):
            failed.append((PinJob(record, b""), image))
        else:
            jobs.append(PinJob(record, image))
    encoded = await path.encode(jobs, {version: encoder})
    encoded.failed[:0] = failed
    return encoded


@dataclass
class _Fill:
    """One backfill run: the path, the encoder, the checkpoint and its progress bar."""

    version: int
    path: EmbedWritePath
    encoder: BatchEmbedder
    state: BackfillState
    spath: Path
    bar: Any
    load_image: Callable[[str], Awaitable[bytes]]

    async def encode(self, chunk: list[PinNode]) -> tuple[list[PinNode], Encoded]:
        images = await load_images(chunk, self.load_image)
        return chunk, await encode_nodes(self.path, self.version, self.encoder, chunk, images)

    async def write(self, chunk: list[PinNode], encoded: Encoded) -> None:
        """Write, then checkpoint: a restart resumes after the last chunk written."""
        written = await self.path.write(encoded)
        for job, why in written.failed:
            log.warning(
                "backfill.pin_failed", pin_id=job.record.pin_id, stage=why.stage, reason=why.reason
            )
        self.state.embedded += len(written.jobs)
        self.state.failed.extend(job.record.pin_id for job, _ in written.failed)
        self.state.last_pin_id = chunk[-1].pin_id
        self.state.save(self.spath)
        self.bar.update(len(chunk))


async def _fill(fill: _Fill, chunks: Iterator[list[PinNode]]) -> None:
    """Encode chunk N+1 while chunk N is written; checkpoints stay in order. On an error the
    write in flight still finishes (and is checkpointed) before the error propagates."""
    writing: asyncio.Task[None] | None = None
    try:
        for chunk in chunks:
            encoded = await fill.encode(chunk)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(fill.write(*encoded))
    finally:
        if writing is not None:
            await writing


def _chunks(
    graph: GraphStore, state: BackfillState, page_size: int, batch_size: int, id_prefix: str
) -> Iterator[list[PinNode]]:
    for page in graph.iter_pins(page_size, id_prefix=id_prefix):
        todo = [p for p in page if p.pin_id > state.last_pin_id and p.image_uri]
        for start in range(0, len(todo), batch_size):
            yield todo[start : start + batch_size]


@dataclass(frozen=True)
class BackfillOptions:
    """The knobs of one run (see `backfill`)."""

    batch_size: int = 64
    page_size: int = 2000
    switch: bool = True
    id_prefix: str = ""
    provider: str = "auto"
    load_image: Callable[[str], bytes] | None = None
    fetch_policy: FetchPolicy | None = None
    on_switched: Callable[[int], None] | None = None
    progress: bool = True
    encoder: BatchEmbedder | None = None
    writers: WriterCheck | None = None
    writers_timeout_s: float = 120.0


def backfill(
    version: int,
    model_dir: Path,
    graph: GraphStore,
    vectors: VectorVersions,
    state_dir: Path,
    *,
    batch_size: int = 64,
    page_size: int = 2000,
    switch: bool = True,
    id_prefix: str = "",
    provider: str = "auto",
    load_image: Callable[[str], bytes] | None = None,
    fetch_policy: FetchPolicy | None = None,
    on_switched: Callable[[int], None] | None = None,
    progress: bool = True,
    encoder: BatchEmbedder | None = None,
    writers: WriterCheck | None = None,
    writers_timeout_s: float = 120.0,
) -> BackfillReport:
    """Fill pins_v<version> from the graph with the ONNX encoder in `model_dir`.

    `graph` is a graph_store.GraphStore and `vectors` a vector_store.VectorStore (from
    pinclip.factory). Pins go through the worker's embed-and-write path (streams.embedwrite):
    the same decode, batching, rows and error contract. `encoder` defaults to the model in
    `model_dir` on `provider`. `on_switched` runs after the alias moved (e.g. announce the
    promotion and mark the registry's live version). Images are read through the shared fetch
    path under `fetch_policy` (a `streams.content.FetchPolicy`; the content store under
    `state_dir` is always readable) unless `load_image` is given. Call it from synchronous code.

    `writers` (a `streams.writers.WriterCheck`, e.g. `GroupWriters` for the workers' consumer
    group) is the no-pin-left-behind rule while the stream runs: the fill starts only once every
    worker writes `version` too, and the alias moves only if that still holds — each waits up to
    `writers_timeout_s`, then raises `streams.writers.WritersNotReady` (the fill is kept: run
    again to resume). None: no stream writes pins meanwhile (tests, an offline rebuild).
    """
    options = BackfillOptions(
        batch_size,
        page_size,
        switch,
        id_prefix,
        provider,
        load_image,
        fetch_policy,
        on_switched,
        progress,
        encoder,
        writers,
        writers_timeout_s,
    )
    return asyncio.run(_backfill(version, model_dir, graph, vectors, state_dir, options))


async def _writers_ready(version: int, options: BackfillOptions) -> None:
    if options.writers is not None:
        await asyncio.to_thread(
            wait_for_writers, options.writers, version, options.writers_timeout_s
        )


async def _backfill(
    version: int,
    model_dir: Path,
    graph: GraphStore,
    vectors: VectorVersions,
    state_dir: Path,
    options: BackfillOptions,
) -> BackfillReport:
    encoder = options.encoder or await _open_encoder(model_dir, options)
    try:
        if encoder.version != version:
            raise ValueError(f"{model_dir} holds version {encoder.version}, not {version}")
        await asyncio.to_thread(vectors.ensure_version, version)
        await _writers_ready(version, options)  # before the first page of the graph is read
        state, resumed_from = await _fill_version(
            version, graph, vectors, state_dir, encoder, options
        )
    finally:
        await encoder.close()
    count = await asyncio.to_thread(vectors.count, version)
    log.info(
        "backfill.filled",
        version=version,
        embedded=state.embedded,
        failed=len(state.failed),
        collection_count=count,
    )
    switched = False
    if options.switch:
        await _writers_ready(version, options)  # a worker that joined meanwhile writes it too
        # Live writes keep arriving during the fill, so the collection may hold more.
        await asyncio.to_thread(vectors.switch_alias, version, expected_count=state.embedded)
        switched = True
        log.info("backfill.alias_switched", version=version)
        if options.on_switched is not None:
            options.on_switched(version)
    return BackfillReport(version, state.embedded, len(state.failed), count, switched, resumed_from)


async def _open_encoder(model_dir: Path, options: BackfillOptions) -> BatchEmbedder:
    from pinclip.factory import Factory, StoreConfig

    factory = Factory(StoreConfig(onnx_provider=options.provider))
    service: BatchEmbedder = await asyncio.to_thread(
        factory.encoder_service, model_dir, max_batch=options.batch_size
    )
    return service


async def _fill_version(
    version: int,
    graph: GraphStore,
    vectors: VectorVersions,
    state_dir: Path,
    encoder: BatchEmbedder,
    options: BackfillOptions,
) -> tuple[BackfillState, str]:
    """Every pin of the graph (after the checkpoint) into the version; (state, resumed from)."""
    from streams.content import ContentFetcher, FetchPolicy, content_root

    spath = state_path(state_dir, version, options.id_prefix)
    state = BackfillState.load(spath, version)
    resumed_from = state.last_pin_id
    if state.done:
        log.info("backfill.already_done", version=version)
        return state, resumed_from
    path = EmbedWritePath(vectors, graph)
    pool = ThreadPoolExecutor(8, thread_name_prefix="backfill-load")
    # Inline images live in the content store under the state dir: always readable.
    policy = options.fetch_policy or FetchPolicy()
    fetcher = ContentFetcher(policy.with_roots(content_root(state_dir)))
    load: Callable[[str], Awaitable[bytes]] = fetcher.fetch_uri
    if options.load_image is not None:
        given, loop = options.load_image, asyncio.get_running_loop()
        load = lambda uri: loop.run_in_executor(pool, given, uri)  # noqa: E731
    log.info("backfill.start", version=version, resume_after=resumed_from or None)
    try:
        total = await asyncio.to_thread(graph.count_pins, id_prefix=options.id_prefix)
        bar = progress_bar(
            total,
            initial=state.embedded + len(state.failed),
            enabled=options.progress,
            desc=f"backfill v{version}",
            unit="pin",
        )
        fill = _Fill(version, path, encoder, state, spath, bar, load)
        chunks = _chunks(graph, state, options.page_size, options.batch_size, options.id_prefix)
        try:
            await _fill(fill, chunks)
        finally:
            bar.close()
        state.done = True
        state.save(spath)
    finally:
        await path.close()
        await fetcher.aclose()
        pool.shutdown(wait=False)
    return state, resumed_from
