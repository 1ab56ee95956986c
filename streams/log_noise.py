"""Known-harmless library log records, demoted to DEBUG so start-up output shows only what
matters — and still there with PINCLIP_LOG_LEVEL=DEBUG.

Each entry names the logger, a pattern of the message (or of the attached exception), and why
it is harmless here. Whole loggers are not silenced: any other record of theirs (a real error)
passes unchanged. Filters sit on the emitting loggers, so they hold whatever handlers Faust or
the CLI install later.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Noise:
    logger: str
    pattern: str
    why: str


KNOWN_NOISE: tuple[Noise, ...] = (
    Noise(
        "aiokafka.consumer.group_coordinator",
        r"Group Coordinator Request failed: .*"
        r"(GroupCoordinatorNotAvailable|CoordinatorLoadInProgress)",
        "a fresh broker creates __consumer_offsets on the first group; aiokafka retries until "
        "the coordinator exists (seconds)",
    ),
    Noise(
        "kafka.cluster",
        r"Topic .* not found in cluster metadata",
        "a producer's first send to a topic that is being auto-created; the send is retried",
    ),
    Noise(
        "kafka.admin._groups",
        r"Unable to decode member_(metadata|assignment)",
        "Faust's group members carry its own assignor data, which kafka-python's admin client "
        "cannot decode; a backfill reads only their client ids (streams.writers)",
    ),
    Noise(
        "kafka.net.selector",
        r"ran for .* threshold\)\. It is blocking the event loop",
        "kafka-python's own network loop timing one of its steps (0.1 s threshold): on a busy "
        "host a step takes longer; nothing is lost or retried, the consumer lag metric shows "
        "a real slowdown",
    ),
    Noise(
        "grpc._server",
        r"Method not implemented",
        "milvus-lite's embedded gRPC server lacks some RPCs pymilvus probes (AllocTimestamp); "
        "pymilvus falls back",
    ),
    Noise(
        "pymilvus.decorators",
        r"not loaded|released",
        "a collection released after a reopen: vector_store loads it and retries the call",
    ),
    Noise(
        "milvus_lite.server_manager",
        r"DataDirLockedError",
        "another process has the directory open: vector_store raises LiteDirectoryLocked, "
        "whose one-line message says what to do",
    ),
)


class DemoteKnownNoise(logging.Filter):
    """Rewrites matching records to DEBUG; drops them unless the logger is at DEBUG."""

    def __init__(self, entries: list[Noise]) -> None:
        super().__init__()
        self._patterns = [re.compile(entry.pattern) for entry in entries]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text += f" {type(error).__name__}: {error}"
        if not any(p.search(text) for p in self._patterns):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def demote_known_noise(entries: tuple[Noise, ...] = KNOWN_NOISE) -> None:
    """Install the filters (idempotent)."""
    by_logger: dict[str, list[Noise]] = {}
    for entry in entries:
        by_logger.setdefault(entry.logger, []).append(entry)
    for name, group in by_logger.items():
        logger = logging.getLogger(name)
        for existing in list(logger.filters):
            if isinstance(existing, DemoteKnownNoise):
                logger.removeFilter(existing)
        logger.addFilter(DemoteKnownNoise(group))
