"""PinWorker: the I/O around `streams.pipeline` that the Faust agents call.

One method per input stream, each taking a batch of raw records and returning what to emit
(PinEmbedded events, dead letters). It never acks: the agent acks a batch only after the method
returned, i.e. after Milvus and Neo4j accepted every write of the batch.
A lock makes each batch atomic with respect to model swaps, so a batch is written either to the
old targets or to the new ones — never half of each.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from streams import metrics
from streams.config import WorkerConfig
from streams.content import ContentFetcher, ContentStore
from streams.errors import DeterministicError, as_deterministic, classify
from streams.events import DeadLetter, ModelUpdate, NewPin, PinEmbedded, Repin, utc_now
from streams.models import (
    ModelSet,
    check_start_version,
    manifest_dim,
    registry_versions,
    version_uri,
)
from streams.pipeline import (
    ReadyPin,
    RetryPolicy,
    SourceRecord,
    combine_embeddings,
    latest_per_key,
    parse_records,
    pin_embedded_event,
    plan_pin_writes,
    plan_repin_writes,
    rejected,
)
from streams.ports import Embedder, Embedding, GraphSink, VectorSink
from streams.retry import retry_blocking, retry_transient
from streams.sinks import StoreWriter

log = structlog.get_logger(__name__)


@dataclass
class BatchOutcome:
    embedded: list[PinEmbedded] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def _load_encoder(config: WorkerConfig) -> Callable[[Path], Embedder]:
    def load(directory: Path) -> Embedder:
        from encoder.service import EncoderService

        return EncoderService.load(
            directory,
            max_batch=config.max_batch,
            max_delay_ms=config.max_delay_ms,
            provider=config.onnx_provider,
        )

    return load


class PinWorker:
    """Holds the stores, the encoders and the content fetcher; agents stay thin."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        vector_store: VectorSink | None = None,
        graph_store: GraphSink | None = None,
        encoder_loader: Callable[[Path], Embedder] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self._vector_store = vector_store
        self._graph_store = graph_store
        self.models = ModelSet(
            encoder_loader or _load_encoder(config),
            config.state_dir / "model-cache",
            config.registry_url,
        )
        self.retry = retry or RetryPolicy()
        self.fetcher = ContentFetcher(config.fetch.with_roots(config.content_root))
        self.content = ContentStore(config.content_root)
        self.started = asyncio.Event()  # stores connected, start version loaded
        self.ready = asyncio.Event()  # and caught up with model.updates: pins may flow
        self._swap_lock = asyncio.Lock()
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
        if self._vector_store is None:
            from vector_store import VectorStore

            self._vector_store = VectorStore(
                cfg.milvus_uri,
                cfg.milvus_token.get_secret_value(),
                cfg.milvus_alias,
                dim,
                cfg.milvus_consistency,
                prefix=cfg.milvus_prefix,
            )
        if self._graph_store is None:
            from graph_store import GraphStore

            self._graph_store = GraphStore(
                cfg.neo4j_uri,
                cfg.neo4j_user,
                cfg.neo4j_password.get_secret_value(),
                cfg.neo4j_database,
            )
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
        self.writer = StoreWriter(self._vector_store, self._graph_store, self.retry)
        metrics.MODEL_VERSIONS.labels("live").set(version)
        self.started.set()
        log.info("worker_started", model_version=version, milvus=cfg.milvus_uri)

    async def close(self) -> None:
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
        await self.ready.wait()
        metrics.EVENTS_IN.labels("new_pin").inc(len(records))
        metrics.BATCH_SIZE.labels("new_pin").observe(len(records))
        self.counts["pins_in"] += len(records)
        accepted, dead = parse_records(records, NewPin)
        accepted = latest_per_key(accepted, key=lambda a: a.event.pin_id)
        fetched = await asyncio.gather(*(self._fetch(a.event) for a in accepted))
        ready: list[ReadyPin] = []
        for item, image in zip(accepted, fetched, strict=True):
            if isinstance(image, DeterministicError):
                dead.append(rejected(item.record, image, item.event.pin_id))
                continue
            uri = item.event.image_uri
            if uri is None:  # inline image: keep it so the pin can be re-embedded later
                uri = await retry_blocking(
                    functools.partial(self.content.put, image), sink="content", policy=self.retry
                )
            ready.append(ReadyPin(item, image, uri))
        outcome = BatchOutcome(dead=dead)
        async with self._swap_lock:
            if ready:
                outcome.embedded = await self._embed_and_write(ready, outcome.dead)
        self._count_outcome(outcome)
        return outcome

    async def _fetch(self, pin: NewPin) -> bytes | DeterministicError:
        """The image's host is part of the event: failing to get it — even an outage of that
        host — dead-letters this pin alone (stage fetch); only a bug of ours propagates."""
        try:
            return await self.fetcher.fetch_pin_image(pin)
        except Exception as exc:
            if classify(exc) == "fatal":
                raise
            return as_deterministic(exc, "fetch")

    async def _embed(self, version: int, content: Any) -> Embedding | Exception:
        """One pin on one version: an overloaded or swapping encoder is retried; a rejected
        image or bad content is returned (dead-lettered by the caller); a bug propagates."""
        try:
            return await retry_transient(
                lambda: self.models.service(version).embed(content),
                sink="encoder",
                policy=self.retry,
                version=version,
            )
        except Exception as exc:
            if classify(exc) == "fatal":
                raise
            return exc

    async def _embed_and_write(
        self, ready: list[ReadyPin], dead: list[DeadLetter]
    ) -> list[PinEmbedded]:
        from encoder.service import PinContent

        contents = [
            PinContent(r.accepted.event.title, r.accepted.event.description, r.image) for r in ready
        ]
        targets = self.models.targets()
        started = time.perf_counter()
        per_version = await asyncio.gather(
            *(asyncio.gather(*(self._embed(v, c) for c in contents)) for v in targets)
        )
        metrics.ENCODE_SECONDS.observe(time.perf_counter() - started)
        embedded, failed = combine_embeddings(ready, dict(zip(targets, per_version, strict=True)))
        dead.extend(failed)
        plan = plan_pin_writes(embedded)
        # Milvus and Neo4j are written concurrently (independent stores, both idempotent); the
        # batch counts as done only when both returned. A row Milvus refuses as invalid is
        # dead-lettered; its graph node stays (valid content, re-embeddable by a backfill).
        graph_write = asyncio.ensure_future(self.writer.write_pins(plan.nodes, plan.saves))
        vector_results = await asyncio.gather(
            *(self.writer.write_vectors(v, rows) for v, rows in plan.vectors.items())
        )
        graph_refusals = await graph_write
        refused: set[str] = set()
        records = {e.pin.pin_id: e.record for e in embedded}
        for row, why in [*graph_refusals, *(r for rs in vector_results for r in rs)]:
            if row.pin_id in refused:
                continue
            refused.add(row.pin_id)
            dead.append(rejected(records[row.pin_id], why, row.pin_id))
        now = utc_now()
        histogram = metrics.FRESHNESS_SECONDS.labels(self.config.milvus_consistency)
        events = []
        for item in embedded:
            if item.pin.pin_id in refused:
                continue
            event = pin_embedded_event(item.pin, item.vectors.keys(), now)
            events.append(event)
            histogram.observe(event.latency_ms / 1000.0)
            self.latencies_ms.append(event.latency_ms)
            log.debug(
                "pin_embedded",
                pin_id=event.pin_id,
                topic=item.record.topic,
                partition=item.record.partition,
                offset=item.record.offset,
                model_versions=event.model_versions,
                latency_ms=round(event.latency_ms, 1),
            )
        return events

    # --- repins and model updates ------------------------------------------------------------

    async def handle_repins(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        await self.ready.wait()
        metrics.EVENTS_IN.labels("repin").inc(len(records))
        metrics.BATCH_SIZE.labels("repin").observe(len(records))
        self.counts["repins_in"] += len(records)
        accepted, dead = parse_records(records, Repin)
        saves = plan_repin_writes(accepted)
        refusals = await self.writer.write_saves(saves)
        metrics.EVENTS_OUT.labels("save").inc(len(saves) - len(refusals))
        for save, why in refusals:
            for item in accepted:  # every record of that (pin, board) in this batch
                if (item.event.pin_id, item.event.board_id) == (save.pin_id, save.board_id):
                    dead.append(rejected(item.record, why, save.pin_id))
        outcome = BatchOutcome(dead=dead)
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
