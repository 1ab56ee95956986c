"""Two workers in one consumer group: they split the topic's partitions and together embed
every pin exactly once (scale-out, docs/SCALING.md); then one is killed with SIGKILL in the
middle of the stream and its partitions move to the survivor, which finishes everything —
nothing lost, nothing stored twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .faultkit import FaultRun, wait_for
from .outage import assert_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
SPLIT_PINS, SPLIT_REPINS = 400, 200
FAILOVER_PINS, FAILOVER_REPINS = 600, 300
EMBEDDED = "pinclip_events_out_total"


def test_two_workers_split_the_partitions_then_the_survivor_takes_over_a_killed_one(
    fault_run: Callable[..., FaultRun],
) -> None:
    run = fault_run("pair", topic_partitions=PARTITIONS)
    first, second = run.worker("a", metrics=True), run.worker("b", metrics=True)
    everything = set(range(PARTITIONS))

    def split() -> bool:
        held = run.assignment()
        return len(held) == 2 and all(held) and set().union(*held) == everything

    wait_for(split, "both workers hold some of the partitions")

    # Scale-out: a stable group of two embeds every pin exactly once between them.
    batch = run.generate(SPLIT_PINS, SPLIT_REPINS)
    run.produce(batch).join()
    wait_for(lambda: run.embedded_all(run.produced.pin_ids), f"{SPLIT_PINS} pins embedded")
    per_worker = [run.metric(w, EMBEDDED, type="pin_embedded") for w in (first, second)]
    assert all(n > 0 for n in per_worker), f"one worker embedded nothing: {per_worker}"
    assert sum(per_worker) == SPLIT_PINS, f"pins embedded per worker: {per_worker}"
    assert run.progress.embedded_records == SPLIT_PINS  # no pin embedded twice
    assert split(), "the group rebalanced while it was stable"

    # Failover: kill one worker mid-stream; the survivor takes its partitions over.
    batch = run.generate(FAILOVER_PINS, FAILOVER_REPINS)
    run.produce(batch, over_s=10.0)
    wait_for(
        lambda: run.embedded_count() >= SPLIT_PINS + FAILOVER_PINS // 4,
        "the second batch flowing through both workers",
    )
    second.kill()
    wait_for(lambda: run.assignment() == [everything], "the survivor holds every partition")
    run.wait_produced()
    wait_for(lambda: run.embedded_all(run.produced.pin_ids), "every pin embedded after failover")
    assert_alive(first)
    run.wait_until_graph_complete()

    run.assert_no_dead_letters()
    run.assert_every_pin_once_in_milvus()
    run.assert_every_save_once_in_neo4j()
