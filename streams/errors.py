"""The stream's error contract: one place decides retry, dead-letter or stop.

Every failure the worker, the backfill or the demo meets on the embed-and-write path is sorted
here, by type, into one of three kinds:

- ``transient``: a dependency (Milvus, Neo4j, Kafka, a model registry) is unavailable or timed
  out. Back off and retry; the stream waits, nothing is acked, nothing is dropped.
- ``deterministic``: this event, its content, or the version it names is bad. Retrying cannot
  help: dead-letter that event alone (stage + reason) and let the rest of the batch go on.
- ``fatal``: anything else is a bug (or a configuration the process cannot run with). It
  propagates; an exception that escapes an agent stops the worker process (non-zero exit) so the
  next start replays from the last commit — never skip, never spin.

The leaf packages (`encoder`, `graph_store`, `vector_store`) import nothing of ours, so they keep
their own exception types; this module is where those types — and the drivers' (neo4j, pymilvus,
aiokafka / kafka-python, httpx) — are mapped onto the three kinds. Driver classes are looked up
only if the driver is already imported: an exception of a module nobody imported cannot exist,
so classifying never imports a driver.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Literal

from streams.events import DeadLetterStage

ErrorKind = Literal["transient", "deterministic", "fatal"]

#: Longest `detail` a dead letter carries from an exception message.
MAX_DETAIL_CHARS = 500


class DeterministicError(Exception):
    """A bad event (or bad content for it): dead-letter it with `stage` and `reason`.

    `reason` is a short, stable, machine-readable word (it becomes the DLQ reason and a metric
    label); `detail` is for humans and must not leak internals (no ports, hosts, paths).
    """

    def __init__(self, stage: DeadLetterStage, reason: str, detail: str = "") -> None:
        super().__init__(f"{stage}/{reason}: {detail}" if detail else f"{stage}/{reason}")
        self.stage: DeadLetterStage = stage
        self.reason = reason
        self.detail = detail


class TransientError(Exception):
    """A dependency of ours is unavailable right now: retry with backoff, the stream waits."""


class ConfigurationError(Exception):
    """The worker cannot run with this configuration (fatal): its message is one line that
    says what to change."""


def classify(exc: BaseException) -> ErrorKind:
    """Sort one exception into transient / deterministic / fatal (see the module docstring).

    Decided by type only (and, for the stores and drivers, by their own error classes), so the
    rule is the same for the worker, the backfill and the demo.
    """
    if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt, SystemExit
        return "fatal"
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, DeterministicError):
        return "deterministic"
    for rule in _RULES:
        kind = rule(exc)
        if kind is not None:
            return kind
    return _classify_builtin(exc)


def as_deterministic(exc: BaseException, stage: DeadLetterStage) -> DeterministicError:
    """The dead-letter (stage, reason, detail) for an exception `classify` calls deterministic.

    Content and image rejections keep their own stage (fetch / decode) and reason; everything
    else is dead-lettered at `stage`, where it happened, with a short reason.
    """
    if isinstance(exc, DeterministicError):
        return exc
    known = _known_rejection(exc)
    if known is not None:
        return known
    return DeterministicError(stage, _reason_for(exc, stage), short_detail(exc))


def short_detail(exc: BaseException) -> str:
    """`Type: message`, truncated: enough for a human, never a whole payload."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_DETAIL_CHARS]


# --- the rules, one per family of exceptions ------------------------------------------------


def _module(name: str) -> Any:
    """An already-imported module, or None (classifying never imports a driver)."""
    return sys.modules.get(name)


def _ours(exc: Exception) -> ErrorKind | None:
    """Our leaf packages' own exception types and the stream's content / model errors."""
    graph = _module("graph_store.retry")
    if graph is not None and isinstance(exc, graph.GraphStoreUnavailable):
        return "transient"  # a RuntimeError, but an outage: the bounded retry ran out
    vectors = _module("vector_store.errors")
    if vectors is not None:
        if isinstance(exc, vectors.VectorStoreUnavailable):
            return "transient"
        if isinstance(exc, vectors.VectorStoreError):  # unknown version, refused row/switch
            return "deterministic"
    if _known_rejection(exc) is not None:
        return "deterministic"
    batcher = _module("encoder.batcher")
    if batcher is not None and isinstance(exc, batcher.BatcherClosed):
        return "transient"  # a model swap closed the old batcher under this request
    runtime = _module("encoder.runtime")
    if runtime is not None:
        if isinstance(exc, runtime.ModelDirectoryCorrupt):
            return "deterministic"  # the announced model's files do not match their hashes
        if isinstance(exc, runtime.ProviderUnavailable):
            return "fatal"  # configuration: CUDA asked for, not there
    return None


def _known_rejection(exc: BaseException) -> DeterministicError | None:
    """ContentError (fetch) and ImageRejected (decode) carry their own reason."""
    content = _module("streams.content")
    if content is not None and isinstance(exc, content.ContentError):
        return DeterministicError("fetch", exc.reason, exc.detail)
    preprocess = _module("encoder.preprocess")
    if preprocess is not None and isinstance(exc, preprocess.ImageRejected):
        return DeterministicError("decode", exc.reason, exc.detail)
    return None


def _neo4j(exc: Exception) -> ErrorKind | None:
    errors = _module("neo4j.exceptions")
    if errors is None or not isinstance(exc, (errors.Neo4jError, errors.DriverError)):
        return None
    if exc.is_retryable() or isinstance(exc, (errors.ServiceUnavailable, errors.SessionExpired)):
        return "transient"
    code = str(getattr(exc, "code", "") or "")
    if isinstance(
        exc, (errors.AuthError, errors.Forbidden, errors.CypherSyntaxError)
    ) or code.startswith("Neo.ClientError.Security"):
        return "fatal"  # configuration (credentials, rights) or a bug of ours (syntax)
    if isinstance(exc, errors.ClientError):
        return "deterministic"  # the data of this write was refused (constraint, type ...)
    return "fatal"  # driver misuse, a server-side failure that retrying does not fix


_KAFKA_TOO_LARGE = frozenset(
    {"MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError"}
)


def _kafka(exc: Exception) -> ErrorKind | None:
    for name in ("aiokafka.errors", "kafka.errors"):
        errors = _module(name)
        if errors is None or not isinstance(exc, errors.KafkaError):
            continue
        if type(exc).__name__ in _KAFKA_TOO_LARGE:
            return "deterministic"  # this record can never be sent
        if getattr(exc, "retriable", False) or isinstance(exc, errors.KafkaTimeoutError):
            return "transient"
        return "fatal"  # authorization, closed producer, protocol misuse
    return None


def _milvus(exc: Exception) -> ErrorKind | None:
    """Raw pymilvus / grpc errors (VectorStore wraps its own; this covers any other caller)."""
    pymilvus = _module("pymilvus.exceptions")
    grpc = _module("grpc")
    raw = (pymilvus is not None and isinstance(exc, pymilvus.MilvusException)) or (
        grpc is not None and isinstance(exc, grpc.RpcError)
    )
    if not raw:
        return None
    from vector_store.errors import is_unavailable

    return "transient" if is_unavailable(exc) else "deterministic"


def _http(exc: Exception) -> ErrorKind | None:
    httpx = _module("httpx")
    if httpx is None:
        return None
    refused = (
        httpx.InvalidURL,
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
        httpx.TooManyRedirects,
        httpx.DecodingError,
        httpx.HTTPStatusError,
        httpx.StreamError,
    )
    if isinstance(exc, refused):
        return "deterministic"  # this URL or this answer is bad; asking again cannot help
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)):
        return "transient"
    return None


def _pillow(exc: Exception) -> ErrorKind | None:
    """Pillow's own types (not identified, decompression bomb): the image is bad. Its plain
    OSErrors are mapped to ImageRejected by encoder.preprocess."""
    return "deterministic" if type(exc).__module__.startswith("PIL.") else None


_RULES: tuple[Callable[[Exception], ErrorKind | None], ...] = (
    _ours,
    _neo4j,
    _kafka,
    _milvus,
    _http,
    _pillow,
)


def _classify_builtin(exc: Exception) -> ErrorKind:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "transient"
    if isinstance(exc, PermissionError):
        return "fatal"  # configuration: the process may not read/write where it must
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return "deterministic"  # e.g. a ModelUpdate naming a version that is not there
    if isinstance(exc, OSError):
        return "transient"  # I/O trouble of the machine or a remote file system
    if isinstance(exc, (ValueError, OverflowError)):
        return "deterministic"  # a refused row, a timestamp that overflows on conversion
    return "fatal"


def _reason_for(exc: BaseException, stage: DeadLetterStage) -> str:
    if type(exc).__name__ in _KAFKA_TOO_LARGE:
        return "too_large"
    if isinstance(exc, OverflowError):
        return "out_of_range"
    vectors = _module("vector_store.errors")
    if vectors is not None and isinstance(exc, vectors.UnknownVersion):
        return "unknown_version"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if stage == "write":
        return "invalid_row"
    return _snake(type(exc).__name__)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
