"""A worker process killed with SIGKILL in the middle of a live stream, then restarted:
at-least-once delivery plus idempotent writes must leave every pin in Milvus exactly once and
every save edge in Neo4j exactly once, with nothing dead-lettered by the crash."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .faultkit import FaultRun, wait_for
from .outage import assert_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_PINS = 3_000
N_REPINS = 2_000  # a 5,000-event stream
STREAM_S = 30.0  # produced live over this long, faster than the worker can embed


def test_kill_9_mid_stream_and_restart_stores_every_pin_and_save_exactly_once(
    fault_run: Callable[..., FaultRun],
) -> None:
    run = fault_run("crash", topic_partitions=2)
    events = run.generate(N_PINS, N_REPINS)
    worker = run.worker()
    run.produce(events, over_s=STREAM_S)

    wait_for(
        lambda: run.embedded_count() >= N_PINS // 3,
        "a third of the pins embedded before the crash",
        every=lambda: assert_alive(worker),
    )
    worker.kill()
    embedded_before_crash = run.embedded_count()
    assert embedded_before_crash < N_PINS, "the crash must land mid-stream"

    run.worker()  # the same machine: same state dir, same group
    run.wait_produced()
    wait_for(lambda: run.embedded_all(run.produced.pin_ids), f"all {N_PINS} pins embedded")
    run.wait_until_graph_complete()

    run.assert_no_dead_letters()
    run.assert_every_pin_once_in_milvus()
    run.assert_every_save_once_in_neo4j()
