"""The distributed backfill's rules (pinclip.reembed.work): its records on the wire, the
completion rule, and the count that a replayed item must not inflate."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pinclip.reembed.planner import plan_items
from pinclip.reembed.work import (
    BadWorkRecord,
    ItemDone,
    Planned,
    Progress,
    WorkItem,
    completion,
    group_id,
    missing_results,
    parse,
    partition_of,
    progress_topic,
    work_topic,
)


def planned(plan: str = "p1", items: int = 4, ends: dict[int, int] | None = None) -> Planned:
    return Planned(plan=plan, version=2, items=items, pins=items * 10,
                   end_offsets=ends or {0: 2, 1: 2})  # fmt: skip


def done(seq: int, plan: str = "p1", embedded: int = 10, failed: int = 0) -> ItemDone:
    return ItemDone(plan=plan, version=2, seq=seq, embedded=embedded, failed=failed)


def test_records_round_trip_and_names_are_per_version() -> None:
    item = WorkItem(plan="p1", version=2, seq=3, first="a", last="b", pins=10)
    assert parse(item.to_bytes()) == item
    assert parse(planned().to_bytes()) == planned()  # partition keys survive JSON
    assert work_topic("pins.reembed", 2) == "pins.reembed.v2"
    assert progress_topic("pins.reembed", 2) == "pins.reembed.v2.progress"
    assert group_id("pinclip-worker", 2) != group_id("pinclip-worker", 3)


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"\xff\xfe", b"[1]", b'{"kind": "rm -rf"}', b'{"kind": "item", "plan": "p"}',
     b'{"kind": "item", "plan": "p", "version": 0, "seq": 0, "first": "a", "last": "a", "pins": 1}',
     b'{"kind": "done", "plan": "p", "version": 2, "seq": 0, "embedded": 1, "failed": 0, "x": 1}'],
)  # fmt: skip
def test_hostile_records_are_refused_with_a_reason(raw: bytes | None) -> None:
    with pytest.raises(BadWorkRecord):
        parse(raw)


def test_complete_only_when_every_partition_committed_its_end_offset() -> None:
    plan, progress = planned(), Progress(2)
    progress.add(plan)
    for seq in range(3):
        progress.add(done(seq))
    state = completion(plan, {0: 2, 1: 1}, progress)
    assert not state.complete and state.behind == {1: 1} and state.items_done == 3
    assert not completion(plan, {0: 2}, progress).complete  # partition 1: nothing committed
    assert not completion(plan, {0: 2, 1: None}, progress).complete
    progress.add(done(3))
    state = completion(plan, {0: 2, 1: 2}, progress)
    assert state.complete and state.embedded == 40 and missing_results(plan, progress) == []


def test_a_replayed_item_is_counted_once() -> None:
    plan, progress = planned(items=2), Progress(2)
    progress.add(plan)
    progress.add(done(0, embedded=10))
    progress.add(done(1, embedded=9, failed=1))
    progress.add(done(0, embedded=10))  # the item again, after a worker died before its commit
    state = completion(plan, {0: 2, 1: 2}, progress)
    assert (state.embedded, state.failed, state.items_done) == (19, 1, 2)


def test_only_the_latest_plan_and_its_version_count() -> None:
    progress = Progress(2)
    progress.add(planned("old"))
    progress.add(done(0, plan="old"))
    progress.add(ItemDone(plan="new", version=3, seq=0, embedded=99, failed=0))  # other version
    progress.add(planned("new", items=1))
    progress.add(done(0, plan="new", embedded=7))
    assert progress.planned is not None and progress.planned.plan == "new"
    assert completion(progress.planned, {0: 2, 1: 2}, progress).embedded == 7
    assert missing_results(planned("other", items=1), Progress(2)) == [0]


@dataclass
class Pin:
    pin_id: str


def test_items_are_consecutive_graph_pages_spread_round_robin() -> None:
    pages = iter([[Pin("a"), Pin("b")], [], [Pin("c")], [Pin("d"), Pin("e"), Pin("f")]])
    items = list(plan_items(2, "p", pages))
    assert [(i.seq, i.first, i.last, i.pins) for i in items] == [
        (0, "a", "b", 2), (1, "c", "c", 1), (2, "d", "f", 3)]  # fmt: skip
    assert [partition_of(i, 4) for i in range(6)] == [0, 1, 2, 3, 0, 1]


def test_a_plan_for_another_model_under_the_same_version_number_is_not_this_one() -> None:
    progress = Progress(2, model="sha-new")
    progress.add(Planned(plan="stale", version=2, model="sha-old", items=1, pins=1,
                         end_offsets={0: 1}))  # fmt: skip
    assert progress.planned is None  # a reset registry: plan again, never switch on it
    mine = Planned(plan="p", version=2, model="sha-new", items=1, pins=1, end_offsets={0: 1})
    progress.add(mine)
    assert progress.planned == mine
