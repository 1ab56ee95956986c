"""structlog, configured once: console renderer for people, JSON for production."""

from __future__ import annotations

import logging
import sys

import structlog

from streams.log_noise import demote_known_noise

_configured = False

# Client libraries log every connection and offset reset at INFO; our own adapters log what
# matters (with pin ids and offsets). pymilvus also logs an ERROR with a traceback for errors
# that vector_store handles itself (e.g. "collection released" → load and retry): those
# surface as typed exceptions from our code when they are real.
QUIET_LOGGERS = {
    "kafka": logging.WARNING,
    "aiokafka": logging.WARNING,
    "faust": logging.WARNING,
    "mode": logging.WARNING,
    "neo4j": logging.WARNING,
    "faiss": logging.WARNING,
    "milvus_lite": logging.WARNING,
    "pymilvus": logging.CRITICAL,
    "httpx": logging.WARNING,
}


def configure_logging(json: bool = False, level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    demote_known_noise()
    for name, quiet_level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet_level, logging.getLevelName(level.upper())))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
