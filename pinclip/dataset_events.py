"""A dataset in the offline format (docs/trainer.md) as the live system's input events.

Each pin becomes one NewPin, created on the board of its first save (a pin is always created on
a board); every further save becomes a Repin. Pins come first, in dataset order, then the
repins, so the worker normally sees a pin before its saves (it would accept them either way:
graph writes are MERGEs).

Images travel inline (the default: base64 in the event, so a worker anywhere can embed it; it
keeps the bytes in its content store, from where retraining and backfills re-read them; small
images only — one event must fit a Kafka record) or by URI: a dataset-relative path becomes an
absolute `file://` URI, which the worker reads on *its* filesystem, inside its allowed file
roots. Nothing here talks to Kafka: `pinclip stream-dataset` sends what this yields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from streams.events import MAX_INLINE_IMAGE_BYTES, NewPin, Repin
from trainer.dataset import Dataset, PinRecord, SaveRecord

IMAGE_MODES = ("inline", "uri")
ANONYMOUS_USER = "anonymous"
#: A Kafka record's default size limit (broker message.max.bytes, client max_request_size ≈ 1 MiB)
KAFKA_RECORD_LIMIT = 1_000_000


@dataclass(frozen=True)
class Skipped:
    """A dataset row that cannot become an event, and why (reported, never silently lost)."""

    pin_id: str
    reason: str


@dataclass(frozen=True)
class DatasetPlan:
    """Which pins and saves a run streams: `limit` keeps the first N pins and their saves."""

    pins: list[PinRecord]
    first_save: dict[str, SaveRecord]
    repins: list[SaveRecord]
    without_board: list[PinRecord]

    @property
    def events(self) -> int:
        return len(self.pins) + len(self.repins)


def plan_dataset(dataset: Dataset, limit: int | None = None) -> DatasetPlan:
    pins = dataset.pins if limit is None else dataset.pins[:limit]
    chosen = {p.pin_id for p in pins}
    first_save: dict[str, SaveRecord] = {}
    repins: list[SaveRecord] = []
    seen: set[tuple[str, str]] = set()
    for save in dataset.saves:
        edge = (save.pin_id, save.board_id)
        if save.pin_id not in chosen or edge in seen:
            continue
        seen.add(edge)
        if save.pin_id in first_save:
            repins.append(save)
        else:
            first_save[save.pin_id] = save
    without = [p for p in pins if p.pin_id not in first_save]
    return DatasetPlan([p for p in pins if p.pin_id in first_save], first_save, repins, without)


def image_uri(dataset: Dataset, pin: PinRecord) -> str:
    """The URI the worker reads: URLs as they are, local paths absolute `file://`."""
    url = dataset.image_url(pin)
    return url if "://" in url else Path(url).resolve().as_uri()


def new_pin_event(
    dataset: Dataset,
    pin: PinRecord,
    save: SaveRecord,
    *,
    images: str,
    now: datetime,
    read_image: Callable[[PinRecord], bytes] | None = None,
) -> NewPin | Skipped:
    fields: dict[str, object] = {
        "pin_id": pin.pin_id,
        "board_id": save.board_id,
        "user_id": save.user_id or ANONYMOUS_USER,
        "title": pin.title,
        "description": pin.description,
        "created_at": now,
    }
    try:
        if images == "inline":
            data = (read_image or dataset.read_image_bytes)(pin)
            if len(data) > MAX_INLINE_IMAGE_BYTES:
                return Skipped(
                    pin.pin_id,
                    f"image is {len(data)} bytes, more than the {MAX_INLINE_IMAGE_BYTES} an "
                    "inline image may have: stream it with --images uri",
                )
            event = NewPin.with_inline_image(data, **fields)
            size = len(event.to_json_bytes())
            if size > KAFKA_RECORD_LIMIT:
                return Skipped(
                    pin.pin_id,
                    f"with its image inline the event is {size} bytes, more than a Kafka record "
                    f"takes by default ({KAFKA_RECORD_LIMIT}): stream it with --images uri",
                )
            return event
        return NewPin.model_validate({**fields, "image_uri": image_uri(dataset, pin)})
    except OSError as exc:
        return Skipped(pin.pin_id, f"image unreadable: {exc}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        return Skipped(pin.pin_id, f"{where}: {first['msg']}")


def repin_event(save: SaveRecord, now: datetime) -> Repin | Skipped:
    try:
        return Repin(
            pin_id=save.pin_id,
            board_id=save.board_id,
            user_id=save.user_id or ANONYMOUS_USER,
            ts=now,
        )
    except ValidationError as exc:
        return Skipped(save.pin_id, f"save to {save.board_id!r}: {exc.errors()[0]['msg']}")


def dataset_events(
    dataset: Dataset,
    plan: DatasetPlan,
    *,
    images: str = "inline",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    read_image: Callable[[PinRecord], bytes] | None = None,
) -> Iterator[NewPin | Repin | Skipped]:
    """NewPins (stamped `created_at` = now, the moment they enter the system), then Repins."""
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, not {images!r}")
    for pin in plan.pins:
        yield new_pin_event(
            dataset,
            pin,
            plan.first_save[pin.pin_id],
            images=images,
            now=clock(),
            read_image=read_image,
        )
    for save in plan.repins:
        yield repin_event(save, clock())
