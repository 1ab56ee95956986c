"""The Faust app: thin agents that move records between Kafka and `PinWorker`.

Delivery (verified in faust-streaming 0.15.3, `faust/streams.py`):
- `Stream.take()` acks the buffered events in a `finally:` around its `yield`. When the agent
  body raises or is cancelled (graceful stop mid-batch) the generator is closed and that
  `finally` acks the whole batch anyway — its offsets would be committed although the writes
  never happened.
- `Stream.noack_take()` buffers the same way but never acks, and `Stream.noack()` iterates
  record by record without acking. The repin agent uses the first, the new-pin agent the second
  (its pipeline batches, streams/pipelining.py); both ack each event themselves only after the
  batch's Milvus and Neo4j writes and its Kafka sends (dead letters, PinEmbedded) succeeded, in
  offset order. Faust commits only acked offsets (`Consumer.ack` → committable
  offsets, committed every `broker_commit_interval`), so a crash or stop mid-batch leaves the
  batch uncommitted and the next worker replays it; idempotent writes make the replay harmless.
- A graceful stop (SIGTERM) does not wait for in-flight batches (`stream_wait_empty=False`):
  they stay unacked and are replayed by the next worker.
- An exception that escapes an agent must stop the process. Faust's default agent supervisor
  (`mode.OneForOneSupervisor`) restarts the crashed actor, which goes on with the records after
  the unacked batch; `Consumer._new_offset` then commits past the gap when it is one offset wide
  or the group has nothing committed yet (`if committed_offset:` is false for None and 0), so
  the failed batch is skipped for good. `agent_supervisor=mode.CrashingSupervisor` makes the
  crash propagate instead: the app crashes, `Worker.execute_from_commandline` exits 1, and the
  next start replays from the last commit. An exception in an `app.task` (start-up, the
  model.updates follower) crashes the app the same way.
  `tests/integration/test_worker_crash.py` shows both: an agent that raises leaves its offset
  uncommitted and the process exits non-zero; a restarted worker replays the batch.
- `model.updates` is a broadcast: every worker must see every update, so it is read by a plain
  aiokafka consumer without a group, from the beginning at each start (updates are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol

import faust
import mode
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from encoder.registry import registry_versions
from streams import metrics, stages
from streams.config import WorkerConfig
from streams.errors import ConfigurationError, classify, short_detail
from streams.events import DeadLetter, Event
from streams.heartbeat import Snapshot, progress_fields
from streams.log_noise import demote_known_noise
from streams.models import check_start_version
from streams.pipeline import SourceRecord, consumer_lag
from streams.ports import StoreFactory
from streams.retry import retry_transient
from streams.routes import Delivery, Route, group_inputs, routes
from streams.worker import BatchOutcome, PinWorker, Submission
from vector_store.errors import LiteDirectoryLocked
from vector_store.milvus_io import lite_directory_locked

log = structlog.get_logger(__name__)


def handler_of(worker: PinWorker, route: Route) -> Any:
    """The PinWorker method a route names (checked for every route by tests/unit/test_routes)."""
    assert route.handler is not None, f"{route.topic_field} is an output, not an input"
    return getattr(worker, route.handler)


def source_record(event: Any) -> SourceRecord:
    message = event.message
    return SourceRecord(
        message.topic, message.partition, message.offset, event.value, message.timestamp
    )


class CommitTimer(faust.Sensor):
    """Times Faust's offset commits (the `commit` stage of the profile)."""

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.perf_counter()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        if isinstance(state, float):
            stages.record("commit", 0, time.perf_counter() - state)


def create_app(
    config: WorkerConfig, worker: PinWorker | None = None, factory: StoreFactory | None = None
) -> faust.App:
    """Build the Faust app and its agents; `app.pin_worker` is the PinWorker behind them
    (given, or built with `factory`: pinclip.factory.Factory in the application)."""
    worker = worker or PinWorker(config, factory=factory)
    topics = config.topics
    app = faust.App(
        config.consumer_group,
        broker=f"kafka://{config.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        datadir=str(config.state_dir / "faust"),
        topic_partitions=config.topic_partitions,
        topic_replication_factor=config.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # A killed worker's partitions move to the others after this long without heartbeats.
        broker_session_timeout=config.session_timeout_s,
        # On SIGTERM do not wait for in-flight batches (during an outage they never finish):
        # they are not acked, so the next worker replays them.
        stream_wait_empty=False,
        # Who this worker is in the group: backfills match the members' client ids with the
        # marks workers leave on the collections they write (streams.writers).
        broker_client_id=worker.writer_id,
        # An escaping exception stops the worker (exit 1) instead of restarting the agent past
        # its unacked batch (see the module docstring).
        agent_supervisor=mode.CrashingSupervisor,
    )
    app.pin_worker = worker  # type: ignore[attr-defined]
    app.sensors.add(CommitTimer())
    channels = {  # every topic of the route table, with its partition count
        route.topic_field: app.topic(
            route.topic(topics),
            value_serializer="raw",
            partitions=route.partitions(config.topic_partitions),
        )
        for route in routes()
    }
    embedded, dlq = channels["embedded"], channels["dlq"]
    processed: dict[tuple[str, int], int] = {}  # next offset per partition, for the lag gauge

    async def publish(outcome: BatchOutcome) -> None:
        """Send dead letters and PinEmbedded and wait until Kafka has them (before acking); a
        broker outage is retried, the batch stays unacked meanwhile."""
        sends: list[tuple[Any, str | None, Event]] = [
            (dlq, letter.pin_id, letter) for letter in outcome.dead
        ]
        sends += [(embedded, e.pin_id, e) for e in outcome.embedded]
        with stages.stage("produce", len(sends), cpu=False):
            await asyncio.gather(*(deliver(topic, key, event) for topic, key, event in sends))

    async def ack_all(stream: Any, events: Iterable[Any]) -> None:
        for event in events:
            await stream.ack(event)
            message = event.message
            processed[(message.topic, message.partition)] = message.offset + 1

    def pipelined(route: Route) -> None:
        async def consume(stream: Any) -> None:
            """Pipelined: a batch is fetched, decoded and encoded while the previous one is
            written and the one before is published and acked — acks stay in order, after the
            writes.

            Records go into the pipeline one by one as Faust hands them over (`noack()`:
            nothing is acked but by `finish`); the pipeline's first stage takes whatever is
            waiting as one batch, so there is no batching window to wait out when idle and no
            timer waking the agent, and batches grow by themselves under load."""
            await worker.ready.wait()

            async def finish(submissions: list[Submission], outcomes: list[BatchOutcome]) -> None:
                await publish(
                    BatchOutcome(
                        [e for o in outcomes for e in o.embedded],
                        [d for o in outcomes for d in o.dead],
                    )
                )
                for submission in submissions:
                    await ack_all(stream, submission.token)

            async with handler_of(worker, route)(finish) as pipeline:
                async for event in stream.noack().events():
                    await pipeline.submit(Submission([source_record(event)], (event,)))

        app.agent(channels[route.topic_field], name=f"pinclip.{route.topic_field}")(consume)

    def batched(route: Route) -> None:
        async def consume(stream: Any) -> None:
            handle = handler_of(worker, route)
            batches = stream.noack_take(config.batch_max * 4, within=config.batch_within_s)
            async for events in batches:
                await publish(await handle([source_record(e) for e in events]))
                await ack_all(stream, events)

        app.agent(channels[route.topic_field], name=f"pinclip.{route.topic_field}")(consume)

    for route in routes(Delivery.PIPELINED):
        pipelined(route)
    for route in routes(Delivery.BATCHED):
        batched(route)

    @app.task
    async def start_worker() -> None:
        for channel in channels.values():
            await channel.maybe_declare()
        if config.metrics_port:
            metrics.serve_metrics(config.metrics_port, config.metrics_host)
        try:
            await worker.start(ready=False)  # waits out store outages
        except Exception as exc:
            log.error("worker_start_failed", error=short_detail(exc))
            raise  # crashes the app: exit 1 with that one line as the reason

    broadcast = {r.topic(topics): handler_of(worker, r) for r in routes(Delivery.BROADCAST)}

    @app.task
    async def follow_broadcasts() -> None:
        """Replay the broadcast topics (model.updates) to their end before opening the pin
        handlers, then follow them."""
        await worker.started.wait()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=config.kafka_bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()  # refresh metadata
            partitions = [
                TopicPartition(topic, p)
                for topic in broadcast
                for p in consumer.partitions_for_topic(topic) or {0}
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)

            async def caught_up() -> bool:
                return all([await consumer.position(tp) >= end[tp] for tp in partitions])

            while not await caught_up():
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        await apply_broadcast(message)
            worker.ready.set()
            log.info("worker_ready", model_versions=list(worker.models.targets()))
            async for message in consumer:
                await apply_broadcast(message)
        finally:
            await consumer.stop()

    async def apply_broadcast(message: Any) -> None:
        record = SourceRecord(message.topic, message.partition, message.offset, message.value)
        await publish(await broadcast[message.topic](record))

    lags: dict[tuple[str, int], int] = {}  # latest lag per input partition held now
    grouped = set(group_inputs(topics))

    @app.timer(interval=1.0)
    async def report_lag() -> None:
        stages.label_threads()  # per-thread CPU readable from outside, by role
        consumer = app.consumer
        inputs = [tp for tp in consumer.assignment() if tp.topic in grouped]
        current = await partition_lags(consumer, inputs, processed)
        lags.clear()  # a partition revoked by a rebalance is another worker's lag now
        lags.update(current)
        for (topic, partition), lag in current.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    if config.progress_interval_s > 0:
        last: list[Snapshot] = []

        @app.timer(interval=config.progress_interval_s)
        async def report_progress() -> None:
            """One `worker_progress` line: embedded, dead-lettered, repins, lag, versions."""
            if not worker.ready.is_set():
                return
            now = Snapshot(
                time.monotonic(), dict(worker.counts), sum(lags.values()), worker.models.targets()
            )
            fields = progress_fields(last[-1] if last else None, now)
            last[:] = [now]
            if fields is not None:
                log.info("worker_progress", **fields)

    return app


async def _send(topic: Any, key: str | None, value: bytes) -> None:
    """Send one record and wait until the broker has it."""
    delivered = await topic.send(key=key.encode() if key else None, value=value)
    await delivered


async def deliver(topic: Any, key: str | None, event: Event) -> None:
    """Send with the retry contract: a broker outage is retried until it ends. A dead letter
    the broker refuses as too large (it cannot be, see pipeline.dead_letter, but it must never
    block a partition) is sent again without its payload; its length and sha256 remain."""
    value = event.to_json_bytes()
    try:
        await retry_transient(lambda: _send(topic, key, value), sink="kafka")
    except Exception as exc:
        if not isinstance(event, DeadLetter) or classify(exc) != "deterministic":
            raise
        bare = event.model_copy(update={"payload": "", "payload_truncated": True})
        await retry_transient(lambda: _send(topic, key, bare.to_json_bytes()), sink="kafka")


def run_worker(
    config: WorkerConfig,
    loglevel: str = "WARNING",
    worker: PinWorker | None = None,
    factory: StoreFactory | None = None,
) -> None:
    """Run the worker in this process until SIGINT/SIGTERM (blocks; owns the event loop).
    Exits 1 when an exception escapes an agent or a task (see the module docstring).
    `python -m pinclip.worker CONFIG.json` and `pinclip worker` call it with the factory
    (pinclip.factory) the worker builds its stores and encoders with."""
    from streams.topics import ensure_topics

    demote_known_noise()
    try:
        preflight(config)
    except ConfigurationError as exc:
        print(f"pinclip worker: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    ensure_topics(config)  # before subscribing: a missing topic is ignored for minutes
    app = create_app(config, worker, factory)
    runner = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    runner.execute_from_commandline()


def preflight(config: WorkerConfig) -> None:
    """Configuration errors found before Faust starts, so they fail in one line at once. Only
    what needs no store: an unreachable registry is left to start-up, which waits it out."""
    try:
        versions = registry_versions(config.registry_url)
    except Exception as exc:
        if classify(exc) == "fatal":
            raise ConfigurationError(f"registry {config.registry_url!r}: {exc}") from exc
        return
    check_start_version(config.registry_url, versions, config.model_version)
    if lite_directory_locked(config.milvus_uri):
        raise ConfigurationError(
            f"{LiteDirectoryLocked(config.milvus_uri)}: point the worker, the API, backfill and "
            "retrain at one Milvus server (PINCLIP_MILVUS_URI=http://HOST:19530; locally: "
            '`pinclip services up && eval "$(pinclip services env)"`)'
        )


def configure_json_logs(level: str) -> None:
    """structlog as JSON lines (a worker subprocess's log file is read by tests and tools)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
    )


class OffsetReader(Protocol):
    """What lag needs of a consumer: Faust's and aiokafka's both have it."""

    async def position(self, tp: Any) -> int | None: ...

    def highwater(self, tp: Any) -> int | None: ...


async def partition_lags(
    consumer: OffsetReader, partitions: Iterable[Any], processed: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Lag of each partition in `partitions` that the consumer still holds. A rebalance can
    revoke one between the listing and the reads (the consumer runs in its own thread); the
    client then raises — IllegalStateError from `position`, an assertion from `highwater` — and
    that partition is skipped: lag is a report, and a timer's exception would crash the app."""
    lags: dict[tuple[str, int], int] = {}
    for tp in partitions:
        try:
            next_offset = processed.get((tp.topic, tp.partition))
            if next_offset is None:
                next_offset = await consumer.position(tp)
            highwater = consumer.highwater(tp)
        except (IllegalStateError, AssertionError):
            continue
        lags[(tp.topic, tp.partition)] = consumer_lag(highwater, next_offset)
    return lags
