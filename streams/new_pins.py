"""New pins: NewPin records → PinEmbedded events and dead letters, through the one
embed-and-write path (`streams.embedwrite`).

Two steps the agent pipelines (`streams.pipelining.StagedPipeline`) so that the next batch is
fetched, decoded and encoded while this one is written:

- `prepare(submissions)`: parse each record on its own, keep the latest event per pin across
  the whole batch, fetch images (`streams.content`, its public entry points), keep inline
  images in the content store, then decode + encode for every target model version;
- `write(prepared)`: Neo4j then Milvus (`EmbedWritePath.write`), then one outcome per
  submission (its PinEmbedded events and dead letters), in submission order.

A batch enters the `SwapGate` before it is encoded and leaves it once written, so a model
update (which waits for the gate) never sees a batch half encoded with the old versions and
half written to the new ones.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from streams import metrics, stages
from streams.content import ContentFetcher, ContentStore
from streams.embedwrite import EmbedWritePath, Encoded, PinJob, PinRecord, Written
from streams.errors import DeterministicError, as_deterministic, classify
from streams.events import DeadLetter, NewPin, PinEmbedded
from streams.models import ModelSet
from streams.pipeline import (
    RetryPolicy,
    SourceRecord,
    dead_letter,
    latest_per_key,
    parse_records,
)
from streams.pipelining import StagedPipeline, SwapGate
from streams.ports import BatchEmbedder
from streams.retry import retry_blocking

log = structlog.get_logger(__name__)


@dataclass
class BatchOutcome:
    embedded: list[PinEmbedded] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class Submission:
    """Records taken from Kafka together; `token` is the caller's (e.g. Faust events to ack)."""

    records: Sequence[SourceRecord]
    token: Any = None


@dataclass
class Prepared:
    submissions: list[Submission]
    outcomes: list[BatchOutcome]
    encoded: Encoded | None = None


# The last stage, once per batch: publish every outcome, then ack every submission, in order.
Finish = Callable[[list[Submission], list[BatchOutcome]], Awaitable[None]]


class NewPinHandler:
    """The worker's new-pin path; `pipeline(finish)` is what the Faust agent runs."""

    def __init__(
        self,
        path: EmbedWritePath,
        models: ModelSet,
        fetcher: ContentFetcher,
        content: ContentStore,
        gate: SwapGate,
        consistency: str,
        policy: RetryPolicy,
    ) -> None:
        self.path = path
        self.policy = policy
        self.models = models
        self.fetcher = fetcher
        self.content = content
        self.gate = gate
        self.freshness = metrics.FRESHNESS_SECONDS.labels(consistency)
        self.latencies_ms: list[float] = []  # drained by the worker for live progress

    async def handle(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """One batch, not pipelined."""
        return (await self.write(await self.prepare([Submission(records)])))[0]

    def pipeline(
        self,
        finish: Finish,
        max_batch: int,
        prepare: Callable[[list[Submission]], Awaitable[Prepared]] | None = None,
    ) -> StagedPipeline[Submission]:
        """prepare → write → finish (publish + ack), overlapped across batches, in order."""

        async def finish_all(done: tuple[list[Submission], list[BatchOutcome]]) -> None:
            await finish(*done)

        async def write(prepared: Prepared) -> tuple[list[Submission], list[BatchOutcome]]:
            return prepared.submissions, await self.write(prepared)

        return StagedPipeline(
            [prepare or self.prepare, write, finish_all],
            max_batch=max_batch,
            max_pending=4 * max_batch,
            weight=lambda s: max(1, len(s.records)),
        )

    # --- prepare ------------------------------------------------------------------------------

    async def prepare(self, submissions: list[Submission]) -> Prepared:
        records = [r for s in submissions for r in s.records]
        metrics.EVENTS_IN.labels("new_pin").inc(len(records))
        metrics.BATCH_SIZE.labels("new_pin").observe(len(records))
        now = time.time()
        waited = [now - r.timestamp for r in records if r.timestamp]
        stages.record_wait("poll", len(waited), sum(waited))
        prepared = Prepared(submissions, [BatchOutcome() for _ in submissions])
        with stages.stage("parse", len(records)):
            accepted = []
            for index, submission in enumerate(submissions):
                good, dead = parse_records(submission.records, NewPin)
                prepared.outcomes[index].dead += dead
                accepted += [(index, item) for item in good]
            accepted = latest_per_key(accepted, key=lambda pair: pair[1].event.pin_id)
        jobs = await self._fetch_all(accepted, prepared)
        await self.gate.enter()
        try:
            encoders = {v: _batch_embedder(self.models.service(v)) for v in self.models.targets()}
            prepared.encoded = await self.path.encode(jobs, encoders)
        except BaseException:
            await self.gate.leave()
            raise
        return prepared

    async def _fetch_all(self, accepted: list[tuple[int, Any]], prepared: Prepared) -> list[PinJob]:
        with stages.stage("fetch", len(accepted), cpu=False):
            fetched = await asyncio.gather(*(self._fetch_one(item.event) for _, item in accepted))
        jobs = []
        for (index, item), image in zip(accepted, fetched, strict=True):
            pin: NewPin = item.event
            if isinstance(image, DeterministicError):
                prepared.outcomes[index].dead.append(
                    dead_letter(item.record, image.stage, image.reason, image.detail, pin.pin_id)
                )
                continue
            uri = pin.image_uri
            if uri is None:  # inline image: keep it so the pin can be re-embedded later
                uri = await retry_blocking(
                    functools.partial(self.content.put, image), sink="content", policy=self.policy
                )
            jobs.append(PinJob(PinRecord.from_new_pin(pin, uri), image, (index, item.record)))
        return jobs

    async def _fetch_one(self, pin: NewPin) -> bytes | DeterministicError:
        """The image's host is part of the event: failing to get it — even an outage of that
        host — dead-letters this pin alone (stage fetch); only a bug of ours propagates."""
        try:
            return await self.fetcher.fetch_pin_image(pin)
        except Exception as exc:
            if classify(exc) == "fatal":
                raise
            return as_deterministic(exc, "fetch")

    # --- write --------------------------------------------------------------------------------

    async def write(self, prepared: Prepared) -> list[BatchOutcome]:
        outcomes = prepared.outcomes
        if prepared.encoded is None:
            return outcomes
        try:
            written = await self.path.write(prepared.encoded)
        finally:
            await self.gate.leave()
        self._outcomes(written, outcomes)
        return outcomes

    def _outcomes(self, written: Written, outcomes: list[BatchOutcome]) -> None:
        for job, why in written.failed:
            index, record = job.source
            outcomes[index].dead.append(
                dead_letter(record, why.stage, why.reason, why.detail, job.record.pin_id)
            )
        versions = list(written.versions)
        for job in written.jobs:
            index, record = job.source
            pin = job.record
            latency_ms = (written.written_at - pin.created_at).total_seconds() * 1000.0
            event = PinEmbedded(
                pin_id=pin.pin_id,
                model_versions=versions,
                created_at=pin.created_at,
                embedded_at=written.written_at,
                latency_ms=latency_ms,
            )
            outcomes[index].embedded.append(event)
            self.freshness.observe(latency_ms / 1000.0)
            self.latencies_ms.append(latency_ms)
            log.debug(
                "pin_embedded",
                pin_id=pin.pin_id,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                model_versions=versions,
                latency_ms=round(latency_ms, 1),
            )


def _batch_embedder(service: object) -> BatchEmbedder:
    """The loaded encoders are EncoderServices; the path needs their whole-batch interface."""
    if not isinstance(service, BatchEmbedder):
        raise TypeError(f"{type(service).__name__} cannot encode pre-decoded batches")
    return service
