"""Neo4j and the Milvus server down for 30 s — when a worker starts, and again in the middle
of a live stream. The promise (docs/streams.md, docs/RELIABILITY.md): a failing dependency
slows the stream, it never drops or skips events. So, for each outage:

- the worker process stays up (it waits, it does not crash or exit);
- nothing produced during the outage is reported embedded while its store is down, and Kafka's
  consumer lag holds at least every record that needs that store (nothing committed past it);
- once the store is back the lag drains to zero, every pin is embedded and stored exactly once,
  every save edge exactly once, and the outage caused no dead letter.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinclip.services.private import PrivateServices
from streams.events import Event
from streams.runner import WorkerProcess

from .faultkit import FaultRun, wait_for
from .outage import Outage, assert_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOWN_S = 30.0  # issue 9: 30 s outages
PHASE_PINS, PHASE_REPINS = 200, 100  # per phase: enough for several batches per partition


@pytest.mark.parametrize(
    ("store", "needs_repins"),
    [("neo4j", True), ("milvus", False)],  # repins touch Neo4j only
    ids=["neo4j", "milvus"],
)
def test_store_down_at_startup_and_mid_stream_the_worker_waits_and_loses_nothing(
    fault_run: Callable[..., FaultRun],
    services: PrivateServices,
    store: str,
    needs_repins: bool,
) -> None:
    run = fault_run(f"{store}outage")

    # Phase 1: the store is down when the worker starts.
    take_down(services, store)
    worker = run.worker()
    ride_out(run, worker, services, store, run.generate(PHASE_PINS, PHASE_REPINS), needs_repins)

    # Phase 2: the store goes down in the middle of a live stream.
    run.produce(run.generate(PHASE_PINS, PHASE_REPINS), over_s=5.0)
    wait_for(
        lambda: run.embedded_count() >= PHASE_PINS + PHASE_PINS // 4,
        "the stream flowing before the outage",
        every=lambda: assert_alive(worker),
    )
    take_down(services, store)
    ride_out(run, worker, services, store, run.generate(PHASE_PINS, PHASE_REPINS), needs_repins)

    run.wait_produced()
    run.wait_until_graph_complete()
    run.assert_no_dead_letters()
    run.assert_every_pin_once_in_milvus()
    run.assert_every_save_once_in_neo4j()


def ride_out(
    run: FaultRun,
    worker: WorkerProcess,
    services: PrivateServices,
    store: str,
    events: list[Event],
    needs_repins: bool,
) -> None:
    """Produce `events` while `store` is down, hold the outage for DOWN_S, bring the store
    back and see the backlog drain."""
    run.produce(events).join()
    outage = Outage(run, worker, events, repins_wait=needs_repins)
    outage.hold(DOWN_S)
    services.start(store)
    outage.assert_drained()


def take_down(services: PrivateServices, store: str) -> None:
    """Neo4j crashes (kill -9: recovery from its transaction log on restart); the Milvus server
    is stopped cleanly (a killed 2.3.5 standalone may not start again on its embedded etcd)."""
    if store == "neo4j":
        services.kill(store)
    else:
        services.stop(store)
