"""Retry what `streams.errors.classify` calls transient; raise everything else at once.

The one retry loop of the stream (worker, backfill, demo). A store or broker that is down is
retried with capped exponential backoff and jitter for as long as it takes — the stream waits,
nothing is acked, nothing is dropped. A deterministic error (a refused row, an unknown version)
or a fatal one (a bug) is raised on the first attempt: the caller dead-letters the event it
concerns, or lets the worker process stop. Nothing but an outage is retried forever.

    rows = await retry_blocking(lambda: store.upsert(v, rows), sink="milvus", policy=policy)
    await retry_transient(lambda: producer.send(...), sink="kafka", policy=policy)
    refused = await isolate_refused(rows, write_batch)   # [(row, DeterministicError)]
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog

from streams.errors import DeterministicError, as_deterministic, classify, short_detail
from streams.events import DeadLetterStage
from streams.metrics import WRITE_RETRIES
from streams.pipeline import RetryPolicy

log = structlog.get_logger(__name__)
T = TypeVar("T")

DEFAULT_POLICY = RetryPolicy()


async def retry_transient(
    attempt: Callable[[], Awaitable[T]],
    *,
    sink: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    **context: Any,
) -> T:
    """Await `attempt()` until it succeeds; retry only transient errors, raise the rest.

    `sink` names the dependency (milvus, neo4j, kafka, registry) for the
    `pinclip_write_retries_total` metric and the `transient_error_retrying` log line;
    `context` (pin_id, version, rows ...) goes into that log line. Cancellation is never
    swallowed: a cancelled wait propagates like any BaseException.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if classify(exc) != "transient":
                raise
            failures += 1
            delay = policy.delay(failures, random.random())
            WRITE_RETRIES.labels(sink).inc()
            log.warning(
                "transient_error_retrying",
                sink=sink,
                attempt=failures,
                retry_in_s=round(delay, 3),
                error=short_detail(exc),
                **context,
            )
            await asyncio.sleep(delay)


async def retry_blocking(
    operation: Callable[[], T],
    *,
    sink: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    **context: Any,
) -> T:
    """`retry_transient` for a blocking call (a store driver): each attempt runs in a thread so
    the event loop — and with it the Kafka heartbeats — keeps going while the store is slow."""
    return await retry_transient(
        lambda: asyncio.to_thread(operation), sink=sink, policy=policy, **context
    )


async def isolate_refused(
    items: Sequence[T],
    write: Callable[[list[T]], Awaitable[object]],
    stage: DeadLetterStage = "write",
) -> list[tuple[T, DeterministicError]]:
    """Write `items` as one batch; if the batch is refused deterministically, split it in halves
    until every refused item stands alone. Returns (item, why) for each refused item, so only
    those are dead-lettered. `write` should already retry transient errors (e.g. through
    `retry_blocking`); a fatal error propagates."""
    try:
        await write(list(items))
        return []
    except Exception as exc:
        if classify(exc) != "deterministic":
            raise
        if len(items) == 1:
            return [(items[0], as_deterministic(exc, stage))]
    middle = len(items) // 2
    return [
        *await isolate_refused(items[:middle], write, stage),
        *await isolate_refused(items[middle:], write, stage),
    ]
