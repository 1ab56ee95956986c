"""Known-harmless library records are demoted to DEBUG; everything else passes unchanged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.log_noise import KNOWN_NOISE, Noise, demote_known_noise


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    names = {entry.logger for entry in KNOWN_NOISE} | {"test.noise.other", "kafka.net.selector"}
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, list(lg.filters)) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    demote_known_noise()
    yield handler
    for lg, (level, filters) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.filters = filters


def test_the_coordinator_startup_error_is_dropped_at_info(captured: Capture) -> None:
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError"
    )
    assert captured.records == []


def test_kafka_pythons_slow_step_warning_is_dropped_at_info(captured: Capture) -> None:
    # the exact format kafka-python 2.x's NetworkSelector uses
    logging.getLogger("kafka.net.selector").warning(
        "Task %r ran for %.3fs (>%.3fs threshold). It is blocking the event loop -- likely a "
        "tight sync loop inside a coroutine. Other pollers will time out.",
        "<kafka.net.selector.Task object>",
        0.101,
        0.1,
    )
    assert captured.records == []


def test_a_demoted_record_is_kept_as_debug_when_debug_is_on(captured: Capture) -> None:
    logger = logging.getLogger("grpc._server")
    logger.setLevel(logging.DEBUG)
    try:
        raise NotImplementedError("Method not implemented!")
    except NotImplementedError:
        logger.exception("Exception calling application: Method not implemented!")
    [record] = captured.records
    assert record.levelno == logging.DEBUG and record.levelname == "DEBUG"


def test_the_exception_attached_to_a_record_is_matched_too(captured: Capture) -> None:
    class DataDirLockedError(Exception):
        pass

    try:
        raise DataDirLockedError("another process holds the lock")
    except DataDirLockedError:
        logging.getLogger("milvus_lite.server_manager").exception("Failed to start MilvusLite")
    assert captured.records == []


def test_other_errors_of_the_same_loggers_pass_unchanged(captured: Capture) -> None:
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Heartbeat session expired - marking coordinator dead"
    )
    logging.getLogger("test.noise.other").error("Method not implemented")  # not a listed logger
    assert [(r.name, r.levelno) for r in captured.records] == [
        ("aiokafka.consumer.group_coordinator", logging.ERROR),
        ("test.noise.other", logging.ERROR),
    ]


def test_installing_twice_keeps_one_filter_per_logger() -> None:
    entries = (Noise("test.noise.twice", "x", "test"),)
    demote_known_noise(entries)
    demote_known_noise(entries)
    assert len(logging.getLogger("test.noise.twice").filters) == 1


def test_every_entry_says_why_it_is_harmless() -> None:
    assert all(entry.why and entry.pattern for entry in KNOWN_NOISE)
