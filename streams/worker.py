"""PinWorker: the I/O around `streams.pipeline` that the Faust agents call.

One method per input stream, each taking a batch of raw records and returning what to emit
(PinEmbedded events, dead letters). It never acks: the agent acks a batch only after the method
returned, i.e. after Milvus and Neo4j accepted every write of the batch. New pins go through
`streams.new_pins` (the one embed-and-write path, pipelined by the agent).
A gate (`streams.pipelining.SwapGate`) makes each batch atomic with respect to model swaps, so
a batch is written either to the old targets or to the new ones — never half of each.

The stores and encoders come from a `StoreFactory` (pinclip.factory.Factory in the
application); tests may hand in stores and an encoder loader instead.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from encoder.registry import manifest_dim, registry_versions, version_uri
from streams import metrics
from streams.config import WorkerConfig, without_userinfo
from streams.content import ContentFetcher, ContentStore
from streams.decode import Decoder
from streams.embedwrite import EmbedWritePath
from streams.errors import as_deterministic, classify, short_detail
from streams.events import ModelUpdate
from streams.graph_writes import GraphWriter
from streams.models import ModelSet, check_start_version
from streams.new_pins import BatchOutcome, NewPinHandler, Prepared, Submission
from streams.pipeline import RetryPolicy, SourceRecord, parse_records, rejected
from streams.pipelining import StagedPipeline, SwapGate
from streams.ports import GraphSink, StoreFactory, VectorSink
from streams.repins import RepinHandler
from streams.retry import retry_blocking, retry_transient
from streams.writers import new_writer_id

log = structlog.get_logger(__name__)

__all__ = ["BatchOutcome", "PinWorker", "Submission"]


class PinWorker:
    """Holds the stores, the encoders and the content fetcher; agents stay thin."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        factory: StoreFactory | None = None,
        vector_store: VectorSink | None = None,
        graph_store: GraphSink | None = None,
        encoder_loader: Callable[[Path], Any] | None = None,
        retry: RetryPolicy | None = None,
        writer_id: str | None = None,
    ) -> None:
        self.config = config
        # Kafka client id of the app and the name of its marks on the collections it writes
        # (streams.writers: what a backfill waits for).
        self.writer_id = writer_id or new_writer_id()
        self._marked: set[int] = set()
        self.factory = factory
        self._vector_store = vector_store
        self._graph_store = graph_store
        if encoder_loader is None:
            encoder_loader = factory.encoder_service if factory is not None else _no_loader
        self.models = ModelSet(
            encoder_loader,
            config.state_dir / "model-cache",
            config.registry_url,
        )
        self.retry = retry or RetryPolicy()
        self.fetcher = ContentFetcher(config.fetch.with_roots(config.content_root))
        self.content = ContentStore(config.content_root)
        self.started = asyncio.Event()  # stores connected, start version loaded
        self.ready = asyncio.Event()  # and caught up with model.updates: pins may flow
        self._swap_lock = SwapGate()  # `async with` = a swap; batches enter/leave it
        self.new_pins: NewPinHandler | None = None  # once started (needs the stores)
        self.repins: RepinHandler | None = None
        self.latencies_ms: deque[float] = deque(maxlen=10_000)  # for live progress
        self.counts = {"pins_in": 0, "repins_in": 0, "embedded": 0, "dead": 0}

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, ready: bool = True) -> None:
        """Connect stores, pick the start version, load its encoder; waits out store outages.

        `ready=False` leaves the pin handlers closed until the caller has replayed
        model.updates (the app does), so no pin is written before a pending candidate is loaded.
        """
        await retry_transient(self._start_once, sink="startup", policy=self.retry)
        if ready:
            self.ready.set()

    async def _start_once(self) -> None:
        cfg = self.config
        versions = await asyncio.to_thread(registry_versions, cfg.registry_url)
        check_start_version(cfg.registry_url, versions, cfg.model_version)
        probe = cfg.model_version or versions[-1]
        dim = await asyncio.to_thread(manifest_dim, version_uri(cfg.registry_url, probe))
        self.models.dim = dim
        if self._vector_store is None or self._graph_store is None:
            if self.factory is None:
                raise ValueError("PinWorker needs a store factory or both stores")
            self._vector_store = self._vector_store or self.factory.vector_store(dim)
            self._graph_store = self._graph_store or self.factory.graph_store()
        await asyncio.to_thread(self._graph_store.ensure_schema)
        live = await asyncio.to_thread(self._vector_store.live_version)
        # The alias wins over "newest in registry": a newer version may be a candidate whose
        # backfill is still running; model.updates (replayed at start) brings it in as `next`.
        version = cfg.model_version or live or versions[-1]
        if self.models.state.live != version:
            await self.models.start(version)
        await asyncio.to_thread(self._vector_store.ensure_version, version)
        if live is None:  # a fresh system: an empty collection is complete, make it live
            await asyncio.to_thread(self._vector_store.switch_alias, version)
        # One Neo4j writer for both inputs: new pins and repins coalesce into one transaction.
        self.graph_writer = GraphWriter(self._graph_store, self.retry)
        self.path = EmbedWritePath(
            self._vector_store,
            self._graph_store,
            decoder=Decoder(cfg.decode_workers, processes=cfg.decode_processes),
            policy=self.retry,
            max_request_bytes=cfg.max_request_bytes,
            graph_writer=self.graph_writer,
        )
        self.repins = RepinHandler(self.graph_writer)
        self.new_pins = NewPinHandler(
            self.path,
            self.models,
            self.fetcher,
            self.content,
            self._swap_lock,
            cfg.milvus_consistency,
            self.retry,
        )
        metrics.MODEL_VERSIONS.labels("live").set(version)
        self.started.set()
        log.info("worker_started", model_version=version, milvus=without_userinfo(cfg.milvus_uri))

    async def close(self) -> None:
        if self.new_pins is not None:
            await self.path.close()
            await self.graph_writer.close()
        await self.fetcher.aclose()
        await self.models.close()
        for store in (self._vector_store, self._graph_store):
            if store is not None:
                await asyncio.to_thread(store.close)

    @property
    def vector_store(self) -> VectorSink:
        assert self._vector_store is not None, "PinWorker.start() first"
        return self._vector_store

    @property
    def graph_store(self) -> GraphSink:
        assert self._graph_store is not None, "PinWorker.start() first"
        return self._graph_store

    # --- new pins ----------------------------------------------------------------------------

    async def handle_new_pins(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """One batch through the embed-and-write path, not pipelined (tests, simple callers)."""
        await self.ready.wait()
        assert self.new_pins is not None  # set by start(), before `ready`
        prepared = await self.prepare_new_pins([Submission(records)])
        outcome = (await self.new_pins.write(prepared))[0]
        self._count_new_pins(len(records), outcome)
        return outcome

    async def prepare_new_pins(self, submissions: list[Submission]) -> Prepared:
        """The first stage, pipelined or not: parse, fetch, decode, encode."""
        assert self.new_pins is not None
        return await self.new_pins.prepare(submissions)

    def new_pin_pipeline(
        self, finish: Callable[[list[Submission], list[BatchOutcome]], Awaitable[None]]
    ) -> StagedPipeline[Submission]:
        """What the new-pin agent runs: submissions are prepared (fetch, decode, encode) while
        the previous batch is written and the one before is finished (`finish(submissions,
        outcomes)`: publish, then ack in order)."""
        handler = self.new_pins
        assert handler is not None  # the agent waits for `ready`

        async def counted(submissions: list[Submission], outcomes: list[BatchOutcome]) -> None:
            for submission, outcome in zip(submissions, outcomes, strict=True):
                self._count_new_pins(len(submission.records), outcome)
            await finish(submissions, outcomes)

        return handler.pipeline(counted, self.config.batch_max, self.prepare_new_pins)

    def _count_new_pins(self, records: int, outcome: BatchOutcome) -> None:
        self.counts["pins_in"] += records
        if self.new_pins is not None:
            self.latencies_ms.extend(self.new_pins.latencies_ms)
            self.new_pins.latencies_ms.clear()
        self._count_outcome(outcome)

    # --- repins and model updates ------------------------------------------------------------

    async def handle_repins(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        await self.ready.wait()
        metrics.EVENTS_IN.labels("repin").inc(len(records))
        metrics.BATCH_SIZE.labels("repin").observe(len(records))
        self.counts["repins_in"] += len(records)
        assert self.repins is not None  # set by start(), before `ready`
        outcome = await self.repins.handle(records)
        self._count_outcome(outcome)
        return outcome

    async def handle_model_update(self, record: SourceRecord) -> BatchOutcome:
        """Apply one ModelUpdate between batches, atomically: a registry or Milvus outage is
        retried (the update waits, nothing changes meanwhile); an untrusted or mismatching
        update is dead-lettered and the served versions stay as they were."""
        await self.started.wait()
        metrics.EVENTS_IN.labels("model_update").inc()
        accepted, dead = parse_records([record], ModelUpdate)
        outcome = BatchOutcome(dead=dead)
        for item in accepted:
            try:
                await self._apply_model_update(item.event)
            except Exception as exc:
                if classify(exc) != "deterministic":
                    raise
                outcome.dead.append(rejected(record, as_deterministic(exc, "model"), None))
        self._count_outcome(outcome)
        return outcome

    async def _apply_model_update(self, update: ModelUpdate) -> None:
        context = {"version": update.version, "stage": update.stage}
        prepared = await retry_transient(
            lambda: self.models.prepare(update), sink="registry", policy=self.retry, **context
        )
        target = prepared.plan.load
        try:
            if target is not None:  # the collection exists before any pin is routed to it
                await retry_blocking(
                    lambda: self.vector_store.ensure_version(target),
                    sink="milvus",
                    policy=self.retry,
                    **context,
                )
        except BaseException:
            await self.models.discard(prepared)
            raise
        async with self._swap_lock:  # between batches: a batch sees one set of versions
            await self.models.commit(prepared)
        state = self.models.state
        metrics.MODEL_VERSIONS.labels("live").set(state.live or 0)
        metrics.MODEL_VERSIONS.labels("next").set(state.next or 0)
        await self._mark_targets()

    async def _mark_targets(self) -> None:
        """Mark each version this worker now writes every new pin into — only after the commit,
        whose swap waited for the batches in flight: a backfill that sees every worker's mark
        finds all their earlier pins in Neo4j (streams.writers). A mark that is refused is
        logged (the backfill then waits for it and says which worker is missing)."""
        for version in self.models.targets():
            if version in self._marked:
                continue
            try:
                await retry_blocking(
                    functools.partial(self.vector_store.mark_writer, version, self.writer_id),
                    sink="milvus",
                    policy=self.retry,
                    version=version,
                )
            except Exception as exc:
                if classify(exc) == "fatal":
                    raise
                log.error("writer_mark_failed", version=version, error=short_detail(exc))
                continue
            self._marked.add(version)
            log.info("writer_marked", version=version, writer=self.writer_id)

    def _count_outcome(self, outcome: BatchOutcome) -> None:
        metrics.EVENTS_OUT.labels("pin_embedded").inc(len(outcome.embedded))
        metrics.EVENTS_OUT.labels("dead_letter").inc(len(outcome.dead))
        self.counts["embedded"] += len(outcome.embedded)
        self.counts["dead"] += len(outcome.dead)
        for letter in outcome.dead:
            metrics.DLQ.labels(letter.stage, letter.reason).inc()
            log.warning(
                "dead_letter",
                pin_id=letter.pin_id,
                topic=letter.source_topic,
                partition=letter.source_partition,
                offset=letter.source_offset,
                stage=letter.stage,
                reason=letter.reason,
            )


def _no_loader(directory: Path) -> Any:
    raise ValueError("PinWorker needs a store factory or an encoder loader to load a model")
