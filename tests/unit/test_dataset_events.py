"""A dataset as live events: every pin a NewPin on its first save's board, every other save a
Repin, images by absolute file:// URI or inline — and rows that cannot be events reported."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from pinclip.dataset_events import KAFKA_RECORD_LIMIT, Skipped, dataset_events, plan_dataset
from streams.events import MAX_INLINE_IMAGE_BYTES, NewPin, Repin
from trainer.dataset import PinRecord, SaveRecord, read_dataset, write_dataset

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    for pin in ("p1", "p2", "p3"):
        (root / "images" / f"{pin}.png").write_bytes(png())
    pins = [
        PinRecord("p1", "Red bike", "vintage", "images/p1.png"),
        PinRecord("p2", "Blue bike", "", "images/p2.png"),
        PinRecord("p3", "Lonely pin", "", "images/p3.png"),  # saved nowhere
    ]
    saves = [
        SaveRecord("p1", "b1", "u1", 1.0),
        SaveRecord("p2", "b1", None, 2.0),
        SaveRecord("p1", "b2", "u2", 3.0),
        SaveRecord("p1", "b2", "u3", 4.0),  # the same edge again: one repin is enough
    ]
    write_dataset(root, pins, saves)
    return root


def test_pins_then_repins_with_absolute_file_uris(dataset_dir: Path) -> None:
    dataset = read_dataset(dataset_dir)
    plan = plan_dataset(dataset)
    assert [p.pin_id for p in plan.without_board] == ["p3"]
    events = list(dataset_events(dataset, plan, images="uri", clock=lambda: NOW))
    assert [type(e) for e in events] == [NewPin, NewPin, Repin]
    first, second, repin = events
    assert isinstance(first, NewPin) and isinstance(second, NewPin) and isinstance(repin, Repin)
    assert (first.pin_id, first.board_id, first.user_id) == ("p1", "b1", "u1")
    assert first.image_uri == (dataset_dir / "images" / "p1.png").resolve().as_uri()
    assert first.created_at == NOW
    assert second.user_id == "anonymous"  # the dataset's user_id is optional, the event's not
    assert (repin.pin_id, repin.board_id, repin.user_id) == ("p1", "b2", "u2")


def test_inline_images_carry_the_bytes(dataset_dir: Path) -> None:
    dataset = read_dataset(dataset_dir)
    pin, _repin = dataset_events(dataset, plan_dataset(dataset, limit=1), images="inline")
    assert isinstance(pin, NewPin) and pin.image_uri is None and pin.image_b64 is not None
    assert base64.b64decode(pin.image_b64) == (dataset_dir / "images" / "p1.png").read_bytes()


def test_limit_keeps_the_first_pins_and_only_their_saves(dataset_dir: Path) -> None:
    plan = plan_dataset(read_dataset(dataset_dir), limit=1)
    assert [p.pin_id for p in plan.pins] == ["p1"]
    assert [(s.pin_id, s.board_id) for s in plan.repins] == [("p1", "b2")]
    assert plan.events == 2


def test_rows_that_cannot_be_events_are_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    write_dataset(
        root,
        [
            PinRecord("long", "x" * 5000, "", "images/missing.png"),
            PinRecord("gone", "ok", "", "images/missing.png"),
        ],
        [SaveRecord("long", "b1"), SaveRecord("gone", "b1")],
    )
    dataset = read_dataset(root)
    plan = plan_dataset(dataset)
    by_uri = list(dataset_events(dataset, plan, images="uri"))
    assert isinstance(by_uri[0], Skipped) and "title" in by_uri[0].reason
    assert isinstance(by_uri[1], NewPin)  # by URI: the worker finds out, and dead-letters it
    inline = list(dataset_events(dataset, plan, images="inline"))
    assert isinstance(inline[1], Skipped) and "unreadable" in inline[1].reason


@pytest.mark.parametrize("size", [MAX_INLINE_IMAGE_BYTES + 1, KAFKA_RECORD_LIMIT])
def test_an_image_too_big_to_inline_is_skipped_with_the_remedy(
    dataset_dir: Path, size: int
) -> None:
    dataset = read_dataset(dataset_dir)
    event, _repin = dataset_events(
        dataset, plan_dataset(dataset, limit=1), images="inline", read_image=lambda _: b"\0" * size
    )
    assert isinstance(event, Skipped) and "--images uri" in event.reason


def test_an_unknown_image_mode_is_refused(dataset_dir: Path) -> None:
    dataset = read_dataset(dataset_dir)
    with pytest.raises(ValueError, match="uri"):
        list(dataset_events(dataset, plan_dataset(dataset), images="s3"))
