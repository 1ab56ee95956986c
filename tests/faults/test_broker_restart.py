"""The Kafka broker restarts in the middle of a stream (a rolling restart of a one-broker
cluster: a graceful stop, then the same broker back on the same data). The worker reconnects
and carries on: every pin embedded and stored exactly once, every save edge exactly once,
no dead letter."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinclip.services.private import PrivateServices

from .faultkit import FaultRun, wait_for
from .outage import assert_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHASE_PINS, PHASE_REPINS = 300, 150


def test_broker_restart_mid_stream_loses_nothing_and_stores_nothing_twice(
    fault_run: Callable[..., FaultRun], services: PrivateServices
) -> None:
    run = fault_run("brokerrestart")
    worker = run.worker()
    before = run.generate(PHASE_PINS, PHASE_REPINS)
    run.produce(before).join()
    wait_for(lambda: run.embedded_count() >= PHASE_PINS // 3, "the stream flowing")

    services.restart("kafka")
    assert_alive(worker)

    after = run.generate(PHASE_PINS, PHASE_REPINS)
    run.produce(after).join()
    wait_for(
        lambda: run.embedded_all(run.produced.pin_ids),
        "every pin embedded after the broker restart",
        every=lambda: assert_alive(worker),
    )
    run.wait_until_graph_complete()

    run.assert_no_dead_letters()
    run.assert_every_pin_once_in_milvus()
    run.assert_every_save_once_in_neo4j()
