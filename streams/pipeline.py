"""The worker's domain logic, free of I/O so it is unit-tested without Kafka or stores.

Agents in `streams.app` only move bytes: they hand raw records here, get back good events and
dead letters, call the stores (new pins through `streams.embedwrite`, the one embed-and-write
path), and ack. The rules that matter for correctness live here: per-item isolation, the repin
write plan, the retry policy and the dual-write rule during a model transition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from pydantic import ValidationError

from graph_store.models import Save
from streams.errors import DeterministicError
from streams.events import (
    DeadLetter,
    DeadLetterStage,
    Event,
    ModelUpdate,
    Repin,
    utc_now,
)

E = TypeVar("E", bound=Event)
T = TypeVar("T")


# --- parsing and dead letters ------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRecord:
    """Where a record came from; enough to dead-letter it and to log it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: float | None = None  # broker/producer time, epoch seconds (for the poll stage)


@dataclass(frozen=True)
class Accepted(Generic[E]):
    record: SourceRecord
    event: E


#: A dead letter keeps at most this many bytes of the original record (plus its length and
#: sha256). Escaping can grow undecodable bytes ~6x in JSON, so a letter stays far below
#: Kafka's default 1 MB producer limit whatever the record was.
MAX_DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024
#: A dead letter's `detail` is a short human hint, never a second payload.
MAX_DEAD_LETTER_DETAIL_CHARS = 2_000
#: Event times outside [EARLIEST_EVENT_TIME, now + MAX_EVENT_TIME_AHEAD] are refused at parse
#: time: they cannot be stored in every sink (Milvus keeps epoch milliseconds, conversions to
#: UTC overflow near year 1 and 9999) and would make freshness meaningless.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME_AHEAD = timedelta(days=1)


def payload_text(value: bytes | None) -> str:
    """The original payload (its first MAX_DEAD_LETTER_PAYLOAD_BYTES) as text; undecodable
    bytes are escaped, never lost."""
    if value is None:
        return ""
    return value[:MAX_DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", errors="backslashreplace")


def dead_letter(
    record: SourceRecord,
    stage: DeadLetterStage,
    reason: str,
    detail: str = "",
    pin_id: str | None = None,
) -> DeadLetter:
    """The dead letter of one record: where it came from, why, and its payload — capped, with
    the original length and sha256 so the full record can be found and verified in the topic."""
    value = record.value or b""
    return DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        stage=stage,
        reason=reason,
        detail=detail[:MAX_DEAD_LETTER_DETAIL_CHARS],
        pin_id=pin_id,
        payload=payload_text(record.value),
        payload_bytes=len(value),
        payload_sha256=hashlib.sha256(value).hexdigest(),
        payload_truncated=len(value) > MAX_DEAD_LETTER_PAYLOAD_BYTES,
    )


def rejected(record: SourceRecord, why: DeterministicError, pin_id: str | None) -> DeadLetter:
    """The dead letter of a record whose event failed deterministically (see streams.errors)."""
    return dead_letter(record, why.stage, why.reason, why.detail, pin_id)


def event_time_problem(event: Event, now: datetime) -> str | None:
    """Why an event's timestamps are outside the sane window, or None if they are fine."""
    latest = now + MAX_EVENT_TIME_AHEAD
    for name, value in event:
        if not isinstance(value, datetime):
            continue
        try:
            moment = value.astimezone(UTC)
        except (OverflowError, ValueError):
            return f"{name}: cannot be converted to UTC"
        if not EARLIEST_EVENT_TIME <= moment <= latest:
            return f"{name}: {moment.isoformat()} is outside [{EARLIEST_EVENT_TIME.date()}, now+1d]"
    return None


def schema_error_reason(exc: ValidationError) -> tuple[DeadLetterStage, str]:
    """Map pydantic's first error to (stage, reason): bad JSON is `parse`, the rest `schema`."""
    first = exc.errors(include_url=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        return "parse", "bad_json"
    if kind in ("model_type", "model_attributes_type"):
        return "parse", "not_an_object"
    if loc and loc[0] == "schema_version":
        return "schema", "unsupported_schema_version"
    if kind == "missing":
        return "schema", "missing_field"
    if kind == "value_error" and not loc:
        return "schema", "invalid_event"
    return "schema", "invalid_field"


def parse_records(
    records: Iterable[SourceRecord], model: type[E], now: datetime | None = None
) -> tuple[list[Accepted[E]], list[DeadLetter]]:
    """Validate each record on its own: a bad one becomes a dead letter, the others go on."""
    now = now or utc_now()
    accepted: list[Accepted[E]] = []
    dead: list[DeadLetter] = []
    for record in records:
        if not record.value:
            dead.append(dead_letter(record, "parse", "empty_value"))
            continue
        try:
            event = model.model_validate_json(record.value)
        except ValidationError as exc:
            stage, reason = schema_error_reason(exc)
            dead.append(dead_letter(record, stage, reason, _short_errors(exc)))
            continue
        problem = event_time_problem(event, now)
        if problem is not None:
            pin_id = getattr(event, "pin_id", None)
            dead.append(dead_letter(record, "schema", "timestamp_out_of_range", problem, pin_id))
            continue
        accepted.append(Accepted(record, event))
    return accepted, dead


def _short_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:5]
    )


def latest_per_key(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    """Keep the last item per key, in first-seen order: a batch never writes one key twice."""
    latest: dict[Hashable, T] = {}
    for item in items:
        latest.pop(key(item), None)
        latest[key(item)] = item
    return list(latest.values())


# --- repin write plans ------------------------------------------------------------------------


def plan_repin_writes(repins: Sequence[Accepted[Repin]]) -> list[Save]:
    """Every save of the batch, repeats included: the graph store coalesces them per edge
    (distinct savers, earliest and latest time), which keeping one save per (pin, board) here
    would lose. MERGE makes replays harmless."""
    return [Save(a.event.pin_id, a.event.board_id, a.event.user_id, a.event.ts) for a in repins]


# --- model versions and the dual-write rule ----------------------------------------------------


@dataclass(frozen=True)
class ModelVersions:
    """The live version (behind the alias) and, during a transition, the next one."""

    live: int | None = None
    next: int | None = None

    def write_targets(self) -> tuple[int, ...]:
        """Dual-write rule: a new pin goes to the live collection AND the next one, if any."""
        return tuple(v for v in (self.live, self.next) if v is not None)


@dataclass(frozen=True)
class ModelPlan:
    state: ModelVersions
    load: int | None = None
    unload: tuple[int, ...] = ()
    ignored: str | None = None  # why nothing changes (stale or repeated update)


def plan_model_update(state: ModelVersions, update: ModelUpdate) -> ModelPlan:
    """What a ModelUpdate does to the worker; repeated (replayed) updates change nothing."""
    version = update.version
    if update.stage == "candidate":
        if state.live is not None and version <= state.live:
            return ModelPlan(state, ignored="candidate not newer than live")
        if version == state.next:
            return ModelPlan(state, ignored="candidate already loaded")
        unload: tuple[int, ...] = (state.next,) if state.next is not None else ()
        return ModelPlan(ModelVersions(state.live, version), load=version, unload=unload)
    # promoted
    if version == state.live:
        return ModelPlan(state, ignored="already live")
    if state.live is not None and version < state.live:
        return ModelPlan(state, ignored="promotion older than live")
    load = None if version == state.next else version
    unload = tuple(v for v in (state.live, state.next) if v is not None and v != version)
    return ModelPlan(ModelVersions(version, None), load=load, unload=unload)


# --- retry policy and lag ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; writes retry forever (the stream waits)."""

    base_s: float = 0.2
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2  # ± fraction of the delay

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait before retry `attempt` (1-based); `rand` in [0, 1) drives jitter."""
        raw = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        return max(0.0, min(self.max_s, raw * (1.0 + self.jitter * (2.0 * rand - 1.0))))


def consumer_lag(highwater: int | None, next_offset: int | None) -> int:
    """Records not yet processed on a partition (highwater is the next offset to be written)."""
    if highwater is None:
        return 0
    return max(0, highwater - (next_offset or 0))
