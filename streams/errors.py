"""The stream's error contract: one place decides retry, dead-letter or stop.

Every failure the worker, the backfill or the demo meets on the embed-and-write path is sorted
here, by type, into one of three kinds:

- ``transient``: a dependency (Milvus, Neo4j, Kafka, a model registry) is unavailable or timed
  out. Back off and retry; the stream waits, nothing is acked, nothing is dropped.
- ``deterministic``: this event, its content, or the version it names is bad. Retrying cannot
  help: dead-letter that event alone (stage + reason) and let the rest of the batch go on.
- ``fatal``: anything else is a bug. It propagates; an exception that escapes an agent stops the
  worker process (non-zero exit) so the next start replays from the last commit — never skip,
  never spin.

The leaf packages (`encoder`, `graph_store`, `vector_store`) import nothing of ours, so they keep
their own exception types; this module is where those types are mapped onto the three kinds.
"""

from __future__ import annotations

from typing import Literal

from streams.events import DeadLetterStage

ErrorKind = Literal["transient", "deterministic", "fatal"]


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


def classify(exc: BaseException) -> ErrorKind:
    """Sort one exception into transient / deterministic / fatal (see the module docstring).

    Decided by type only (and, for the stores, by the store's own error classes), so the rule is
    the same for the worker, the backfill and the demo.
    """
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, DeterministicError):
        return "deterministic"
    # Imported lazily: streams must import without a store driver being importable at module load.
    from graph_store import GraphStoreUnavailable
    from vector_store import VectorStoreError, VectorStoreUnavailable

    if isinstance(exc, (VectorStoreUnavailable, GraphStoreUnavailable)):
        return "transient"
    if isinstance(exc, VectorStoreError):  # unknown version, invalid row, refused switch ...
        return "deterministic"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "transient"
    return "fatal"
