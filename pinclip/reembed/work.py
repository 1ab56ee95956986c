"""Re-embed work, its progress records and the completion rule — free of I/O.

A backfill of version N is planned as *work items*: consecutive pin-id ranges of the graph
(`first` ≤ pin_id ≤ `last`, in the graph's pin_id order), spread round-robin over the partitions
of `<reembed topic>.v<N>`. Each worker of the consumer group `<group>-reembed-v<N>` embeds an
item through the stream's embed-and-write path, then records an `ItemDone` on the progress topic,
then commits the item's offset. The planner, once every item is on the broker, records a
`Planned` with the end offset of every partition.

Completion (`completion`): every partition's committed offset has reached the plan's end offset.
Because an item is committed only after its `ItemDone` is on the broker, that implies a result for
every item; results are keyed by (plan, seq), so an item replayed after a worker died (its
offset was not committed yet) is counted once, not twice. The expected row count of the new
collection is the sum of the items' embedded pins: Milvus keeps one row per pin_id, and live new
pins only add rows, so `count >= expected` is the row check before the alias moves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_FAILED_LISTED = 1000  # pin ids listed per item result; the count is always exact


def work_topic(reembed_topic: str, version: int) -> str:
    return f"{reembed_topic}.v{version}"


def progress_topic(reembed_topic: str, version: int) -> str:
    return f"{reembed_topic}.v{version}.progress"


def group_id(consumer_group: str, version: int) -> str:
    """The backfill workers' consumer group: apart from the stream's (another topic, another
    pace) and per version, so a new model's backfill never inherits an old one's offsets."""
    return f"{consumer_group}-reembed-v{version}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class WorkItem(_Message):
    """Embed every pin with first <= pin_id <= last into version `version`."""

    kind: Literal["item"] = "item"
    plan: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    seq: int = Field(ge=0)
    first: str = Field(min_length=1)
    last: str = Field(min_length=1)
    pins: int = Field(ge=1)  # pins in the range when planned


class ItemDone(_Message):
    kind: Literal["done"] = "done"
    plan: str
    version: int
    seq: int = Field(ge=0)
    embedded: int = Field(ge=0)
    failed: int = Field(ge=0)
    failed_ids: list[str] = Field(default_factory=list)  # at most MAX_FAILED_LISTED
    worker: str = ""


class Planned(_Message):
    kind: Literal["planned"] = "planned"
    plan: str
    version: int
    model: str = ""  # sha256 of the model's manifest: a plan for another vN is not this one
    items: int = Field(ge=0)
    pins: int = Field(ge=0)
    end_offsets: dict[int, int]  # partition -> offset after its last item


class BadWorkRecord(ValueError):
    """A record on a re-embed topic that is not one of ours (hostile or corrupt)."""


def parse(raw: bytes | None) -> WorkItem | ItemDone | Planned:
    """One record of a work or progress topic; `BadWorkRecord` with the reason otherwise."""
    if not raw:
        raise BadWorkRecord("empty record")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadWorkRecord(f"not JSON: {exc}") from None
    kinds: dict[str, type[WorkItem | ItemDone | Planned]] = {
        "item": WorkItem,
        "done": ItemDone,
        "planned": Planned,
    }
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in kinds:
        raise BadWorkRecord(f"unknown kind {kind!r}")
    try:
        return kinds[kind].model_validate(data)
    except ValidationError as exc:
        raise BadWorkRecord(f"invalid {kind}: {exc.errors()[0]['msg']}") from None


@dataclass
class Progress:
    """What the progress topic says about one version: the latest plan and its results."""

    version: int
    model: str = ""  # only plans for this model count (a reset registry reuses version numbers)
    planned: Planned | None = None
    done: dict[int, ItemDone] = field(default_factory=dict)  # seq -> result, latest plan only
    _by_plan: dict[str, dict[int, ItemDone]] = field(default_factory=dict)

    def add(self, record: ItemDone | Planned | WorkItem) -> None:
        if record.version != self.version or isinstance(record, WorkItem):
            return
        if isinstance(record, Planned) and record.model != self.model:
            return
        results = self._by_plan.setdefault(record.plan, {})
        if isinstance(record, Planned):
            self.planned = record
        else:
            results[record.seq] = record  # a replayed item overwrites: counted once
        if self.planned is not None:
            self.done = self._by_plan.get(self.planned.plan, {})


@dataclass(frozen=True)
class Completion:
    complete: bool
    items_done: int
    items: int
    embedded: int
    failed: int
    behind: dict[int, int]  # partition -> items not committed yet

    @property
    def pins_done_estimate(self) -> int:
        return self.embedded + self.failed


def completion(
    planned: Planned, committed: Mapping[int, int | None], progress: Progress
) -> Completion:
    """Is the plan done? Only when every partition's committed offset reached its end offset."""
    behind = {
        p: end - (committed.get(p) or 0)
        for p, end in sorted(planned.end_offsets.items())
        if (committed.get(p) or 0) < end
    }
    done = progress.done if progress.planned == planned else {}
    embedded = sum(r.embedded for r in done.values())
    failed = sum(r.failed for r in done.values())
    return Completion(not behind, len(done), planned.items, embedded, failed, behind)


def missing_results(planned: Planned, progress: Progress) -> list[int]:
    """Items committed without a result: only a lost progress record can cause it."""
    return [seq for seq in range(planned.items) if seq not in progress.done]


def partition_of(seq: int, partitions: int) -> int:
    """Round-robin: consecutive ranges land on different partitions, so every worker of the
    group gets a share of every part of the catalogue."""
    return seq % partitions
