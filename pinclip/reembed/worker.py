"""`python -m pinclip.reembed.worker CONFIG.json VERSION`: one member of a re-embed group.

The loop, per work item (one record of the work topic, `max_poll_records=1`):

1. read the range's pins from Neo4j (placeholders and pins without an image are skipped, as the
   one-process backfill does);
2. fetch, decode, encode and write them through the stream's embed-and-write path — the worker's
   and the backfill's rows, batching and error contract; a pin that cannot be embedded (a broken
   image) is a result, listed in the item's `ItemDone`, never a stop;
3. record `ItemDone` on the progress topic and wait for the broker's ack;
4. commit the item's offset.

A crash anywhere before 4 leaves the item uncommitted: Kafka hands it to another member after the
session timeout and it is done again (upserts by pin_id; its result is keyed by (plan, seq), so
it is counted once). A store that fails (Milvus or Neo4j down) is retried with backoff on the
same item, forever: the backfill slows, it never skips. A worker stops when the latest plan is
complete (every partition committed up to the plan's end offsets).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from encoder.registry import manifest_sha256, version_uri
from pinclip.backfill import encode_nodes, load_images
from pinclip.factory import Factory
from pinclip.reembed.broker import ProgressReader, ReembedTopics
from pinclip.reembed.work import (
    MAX_FAILED_LISTED,
    BadWorkRecord,
    ItemDone,
    WorkItem,
    completion,
    parse,
)
from streams.config import WorkerConfig
from streams.content import ContentFetcher, content_root
from streams.embedwrite import EmbedWritePath
from streams.errors import classify
from streams.ports import BatchEmbedder
from streams.writers import new_writer_id

log = structlog.get_logger("reembed")


@dataclass(frozen=True)
class WorkerOptions:
    session_timeout_s: float = 60.0  # a killed member's items move on after this long
    idle_check_s: float = 2.0  # with nothing to do, check the plan's completion this often
    max_backoff_s: float = 30.0


def model_key(config: WorkerConfig, version: int) -> str:
    """The sha256 of vN's manifest in the registry: what a plan is for."""
    return manifest_sha256(version_uri(config.registry_url, version))


class ItemEmbedder:
    """Step 1–2 of the loop for one version: the stores, the encoder, the fetcher."""

    def __init__(self, config: WorkerConfig, version: int, encoder: BatchEmbedder) -> None:
        factory = Factory.from_worker_config(config)
        self.version = version
        self.encoder = encoder
        self.graph = factory.graph_store()
        self.vectors = factory.vector_store(dim=factory.registry_dim(version))
        self.path = EmbedWritePath(self.vectors, self.graph)
        self.fetcher = ContentFetcher(config.fetch.with_roots(content_root(config.state_dir)))

    async def embed(self, item: WorkItem) -> tuple[int, list[str]]:
        """(pins embedded, pin ids that failed) for one item."""
        nodes = await asyncio.to_thread(self.graph.pins_between, item.first, item.last)
        nodes = [n for n in nodes if n.image_uri]
        images = await load_images(nodes, self.fetcher.fetch_uri)
        encoded = await encode_nodes(self.path, self.version, self.encoder, nodes, images)
        written = await self.path.write(encoded)
        for job, why in written.failed:
            log.warning("reembed.pin_failed", pin_id=job.record.pin_id, stage=why.stage,
                        reason=why.reason)  # fmt: skip
        return len(written.jobs), [job.record.pin_id for job, _ in written.failed]

    async def close(self) -> None:
        await self.path.close()
        await self.fetcher.aclose()
        await self.encoder.close()
        self.graph.close()
        self.vectors.close()


async def _open(config: WorkerConfig, version: int) -> ItemEmbedder:
    factory = Factory.from_worker_config(config)
    model_dir = await asyncio.to_thread(
        factory.model_dir, version, config.state_dir / "registry-cache"
    )
    encoder = await asyncio.to_thread(factory.encoder_service, model_dir)
    if encoder.version != version:
        raise ValueError(f"the registry's v{version} holds version {encoder.version}")
    return ItemEmbedder(config, version, encoder)


def run(config: WorkerConfig, version: int, options: WorkerOptions | None = None) -> int:
    """Work until the latest plan of `version` is complete; the items this worker did."""
    options = options or WorkerOptions(session_timeout_s=config.session_timeout_s)
    topics = ReembedTopics.of(config, version)
    topics.ensure()
    writer_id = new_writer_id()
    consumer = KafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap,
        group_id=topics.group,
        client_id=writer_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        session_timeout_ms=int(options.session_timeout_s * 1000),
        heartbeat_interval_ms=max(100, int(options.session_timeout_s * 1000 / 3)),
        max_poll_interval_ms=3_600_000,  # an item retried through a store outage keeps its claim
    )
    consumer.subscribe([topics.work])
    progress = ProgressReader(topics, version, model_key(config, version))
    producer = topics.producer()
    done = 0
    log.info("reembed.worker_started", version=version, worker=writer_id, group=topics.group)
    with asyncio.Runner() as runner:
        embedder = runner.run(_open(config, version))
        try:
            last_check = 0.0
            while True:
                polled = consumer.poll(timeout_ms=1000)
                for tp, records in polled.items():
                    for record in records:
                        item = _item_of(record, version)
                        if item is not None:
                            result = _with_retry(runner, embedder, item, writer_id, options)
                            producer.send(
                                topics.progress, value=result.to_bytes(), partition=0
                            ).get(60)
                            done += 1
                        _commit(consumer, tp, record.offset + 1)
                now = time.monotonic()
                if not polled and now - last_check >= options.idle_check_s:
                    last_check = now
                    if _plan_complete(topics, progress):
                        break
        finally:
            runner.run(embedder.close())
            consumer.close()
            producer.close()
            progress.close()
    log.info("reembed.worker_done", version=version, worker=writer_id, items=done)
    return done


def _item_of(record: Any, version: int) -> WorkItem | None:
    """The work item in a record; a record that is not one (hostile, another version) is logged
    and passed over — it carries no pin to lose."""
    try:
        parsed = parse(record.value)
    except BadWorkRecord as exc:
        log.warning("reembed.bad_work_record", offset=record.offset, why=str(exc))
        return None
    if not isinstance(parsed, WorkItem) or parsed.version != version:
        log.warning("reembed.foreign_work_record", offset=record.offset, kind=parsed.kind)
        return None
    return parsed


def _with_retry(
    runner: asyncio.Runner,
    embedder: ItemEmbedder,
    item: WorkItem,
    worker: str,
    options: WorkerOptions,
) -> ItemDone:
    delay = 0.5
    while True:
        try:
            embedded, failed = runner.run(embedder.embed(item))
            return ItemDone(
                plan=item.plan,
                version=item.version,
                seq=item.seq,
                embedded=embedded,
                failed=len(failed),
                failed_ids=failed[:MAX_FAILED_LISTED],
                worker=worker,
            )
        except Exception as exc:
            if classify(exc) != "transient":
                raise
            log.warning("reembed.item_retry", seq=item.seq, retry_in_s=delay, error=repr(exc)[:200])
            time.sleep(delay)
            delay = min(delay * 2, options.max_backoff_s)


def _commit(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> None:
    try:
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    except CommitFailedError:  # the group moved the partition meanwhile: its new owner redoes it
        log.warning("reembed.commit_refused", topic=tp.topic, partition=tp.partition, offset=offset)


def _plan_complete(topics: ReembedTopics, progress: ProgressReader) -> bool:
    planned = progress.refresh().planned
    return (
        planned is not None and completion(planned, topics.committed(), progress.progress).complete
    )


def main(argv: list[str] | None = None) -> None:
    from streams.app import configure_json_logs

    args = sys.argv[1:] if argv is None else argv
    config = WorkerConfig.from_json(Path(args[0]).read_text(encoding="utf-8"))
    configure_json_logs(args[2] if len(args) > 2 else "INFO")
    run(config, int(args[1]))


if __name__ == "__main__":
    main()
