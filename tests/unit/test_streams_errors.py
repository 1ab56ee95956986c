"""The error contract: classify() on the real exception types the path meets, and the one
retry helper that retries only what classify calls transient."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiokafka.errors as aiokafka_errors
import kafka.errors as kafka_errors
import neo4j.exceptions as neo4j_errors
import pytest
from pymilvus.exceptions import MilvusException, ParamError

from encoder.batcher import BatcherClosed
from encoder.preprocess import ImageRejected
from encoder.runtime import ModelDirectoryCorrupt, ProviderUnavailable
from graph_store import GraphStoreUnavailable
from streams.content import ContentError
from streams.errors import DeterministicError, TransientError, as_deterministic, classify
from streams.pipeline import RetryPolicy
from streams.retry import isolate_refused, retry_blocking, retry_transient
from vector_store import UnknownVersion, VectorStoreError, VectorStoreUnavailable

FAST = RetryPolicy(base_s=0.001, max_s=0.005)


def overflowing_timestamp() -> OverflowError:
    """A datetime that validates (aware, year 9999) but overflows when converted to UTC."""
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    try:
        late.astimezone(UTC)
    except OverflowError as exc:
        return exc
    raise AssertionError("expected an overflow")


TRANSIENT: list[BaseException] = [
    TransientError("x"),
    VectorStoreUnavailable("milvus down"),
    GraphStoreUnavailable("neo4j down after 6 attempts"),  # a RuntimeError, still an outage
    neo4j_errors.ServiceUnavailable("connection refused"),
    neo4j_errors.SessionExpired("gone"),
    neo4j_errors.TransientError("deadlock"),
    aiokafka_errors.KafkaConnectionError("no broker"),
    aiokafka_errors.KafkaTimeoutError(),
    aiokafka_errors.NotLeaderForPartitionError(),
    kafka_errors.KafkaConnectionError("no broker"),
    kafka_errors.KafkaTimeoutError(),
    MilvusException(code=2, message="Fail connecting to server"),
    ConnectionRefusedError(),
    TimeoutError(),
    BatcherClosed("pins"),
    OSError(5, "Input/output error"),
]

DETERMINISTIC: list[BaseException] = [
    DeterministicError("schema", "invalid_field"),
    UnknownVersion("pins_v9 does not exist"),
    VectorStoreError("Milvus upsert failed: bad row"),
    ContentError("unreachable", "refused"),
    ImageRejected("decode_error", "broken"),
    ModelDirectoryCorrupt("sha256 mismatch for pin.onnx"),
    neo4j_errors.ConstraintError("duplicate"),
    neo4j_errors.CypherTypeError("bad type"),
    aiokafka_errors.MessageSizeTooLargeError(),
    kafka_errors.MessageSizeTooLargeError(),
    ParamError(message="dim mismatch"),
    ValueError("zero vector cannot be normalised"),
    overflowing_timestamp(),
    FileNotFoundError("v9/manifest.json"),
]

FATAL: list[BaseException] = [
    KeyError("a bug"),
    AttributeError("a bug"),
    RuntimeError("a bug"),
    MemoryError(),
    PermissionError("state dir"),
    ProviderUnavailable("CUDA requested"),
    neo4j_errors.AuthError("wrong password"),
    neo4j_errors.CypherSyntaxError("our bug"),
    aiokafka_errors.TopicAuthorizationFailedError(),
    asyncio.CancelledError(),
    KeyboardInterrupt(),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_outages_and_timeouts_are_transient(exc: BaseException) -> None:
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", DETERMINISTIC, ids=lambda e: type(e).__name__)
def test_bad_data_and_unknown_versions_are_deterministic(exc: BaseException) -> None:
    assert classify(exc) == "deterministic"
    why = as_deterministic(exc, "write")
    assert why.reason and " " not in why.reason and len(why.detail) <= 500


@pytest.mark.parametrize("exc", FATAL, ids=lambda e: type(e).__name__)
def test_bugs_configuration_and_cancellation_are_fatal(exc: BaseException) -> None:
    assert classify(exc) == "fatal"


def test_dead_letter_reasons_keep_the_stage_of_content_and_image_rejections() -> None:
    assert as_deterministic(ContentError("too_large", "x"), "write").stage == "fetch"
    decoded = as_deterministic(ImageRejected("truncated", "x"), "encode")
    assert (decoded.stage, decoded.reason) == ("decode", "truncated")
    assert as_deterministic(overflowing_timestamp(), "write").reason == "out_of_range"
    assert as_deterministic(UnknownVersion("v9"), "model").reason == "unknown_version"
    too_big = as_deterministic(aiokafka_errors.MessageSizeTooLargeError(), "write")
    assert too_big.reason == "too_large"


class Flaky:
    """Fails with each exception of `errors` in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def coroutine(self) -> str:
        return self()


async def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    flaky = Flaky(VectorStoreUnavailable("down"), GraphStoreUnavailable("down"), TimeoutError())
    assert await retry_blocking(flaky, sink="milvus", policy=FAST) == "ok"
    assert flaky.calls == 4


@pytest.mark.parametrize(
    "exc", [UnknownVersion("v9"), ValueError("bad row"), overflowing_timestamp(), KeyError("bug")]
)
async def test_deterministic_and_fatal_errors_are_raised_on_the_first_attempt(
    exc: BaseException,
) -> None:
    flaky = Flaky(exc)
    with pytest.raises(type(exc)):
        await retry_transient(flaky.coroutine, sink="milvus", policy=FAST)
    assert flaky.calls == 1


async def test_a_retry_wait_can_be_cancelled() -> None:
    forever = Flaky(*[ConnectionError()] * 10_000)
    task = asyncio.create_task(
        retry_transient(forever.coroutine, sink="neo4j", policy=RetryPolicy(base_s=0.05))
    )
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class RefusingStore:
    """Refuses (ValueError, like a row Milvus rejects) every batch that holds a bad row."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.written: list[int] = []
        self.calls = 0

    async def write(self, rows: list[int]) -> None:
        self.calls += 1
        if self.bad.intersection(rows):
            raise ValueError(f"rows {sorted(self.bad.intersection(rows))} refused")
        self.written.extend(rows)


async def test_only_the_refused_rows_of_a_batch_are_isolated() -> None:
    store = RefusingStore({3, 10, 17, 24, 31})
    refused = await isolate_refused(list(range(32)), store.write)
    assert sorted(row for row, _ in refused) == [3, 10, 17, 24, 31]
    assert sorted(store.written) == sorted(set(range(32)) - store.bad)
    assert all(why.stage == "write" and why.reason == "invalid_row" for _, why in refused)


async def test_one_bad_row_costs_a_few_writes_not_one_per_row() -> None:
    store = RefusingStore({41})
    refused = await isolate_refused(list(range(64)), store.write)
    assert [row for row, _ in refused] == [41]
    assert store.calls <= 1 + 2 * 6  # halving


async def test_a_fatal_error_while_isolating_propagates() -> None:
    async def write(rows: list[Any]) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await isolate_refused([1, 2, 3], write)
