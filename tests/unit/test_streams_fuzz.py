"""Property-based fuzzing (hypothesis) of the event handlers, from raw record bytes to write plans.

Whatever arrives on a topic — random bytes, random JSON, NewPins with hostile fields — the
properties are the contract of issue 9: nothing raises, every record is either written or
dead-lettered with a stage and a reason, every dead letter fits the Kafka producer limit, and
what is accepted can be stored by every sink (timestamps convert, ids fit). Examples are
derandomized (the same on every run: CI never depends on luck) and no example database is kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from streams_fakes import MemoryGraph, MemoryVectors, make_worker, png

from streams.embedwrite import PinRecord
from streams.events import DeadLetter, NewPin, Repin
from streams.pipeline import (
    EARLIEST_EVENT_TIME,
    MAX_EVENT_TIME_AHEAD,
    SourceRecord,
    dead_letter,
    parse_records,
    plan_repin_writes,
)
from vector_store.records import epoch_ms

KAFKA_MAX_REQUEST_BYTES = 1_048_576
STAGES = {"parse", "schema", "fetch", "decode", "encode", "write", "model"}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
any_moment = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
)
recent_moment = st.integers(0, 10**6).map(
    lambda s: (datetime.now(UTC) - timedelta(seconds=s)).isoformat()
)
ids = st.text(min_size=1, max_size=20) | st.text(max_size=300) | st.integers() | st.none()
hostile_uris = st.sampled_from(
    [
        "file:///nonexistent/x.png",
        "gopher://x/y",
        "ftp://example.invalid/x.png",
        "http://[::1/x",
        "http://\u00ad.example/x",
        "javascript:alert(1)",
        "",
        "s3://",
    ]
) | st.text(max_size=60)
good_images = st.sampled_from([png((1, 2, 3)), png((200, 10, 10), (40, 8))])
images = (
    good_images
    | good_images
    | st.sampled_from([b"", b"GIF89a", b"\x89PNG\r\n\x1a\n\0\0", png((9, 9, 9))[:-20]])
    | st.binary(max_size=300)
)


MUTATIONS: dict[str, Any] = {
    "schema_version": st.sampled_from([2, "1", None, 1.5]),
    "pin_id": ids,
    "board_id": ids,
    "user_id": ids,
    "title": st.text(min_size=1_001, max_size=1_100) | json_values,
    "description": st.text(max_size=30) | st.integers(),
    "created_at": any_moment | json_values,
    "image_uri": hostile_uris,
    "image_b64": st.text(max_size=40) | images.map(lambda b: base64.b64encode(b).decode()),
    "is_ad": json_values,
}


@st.composite
def new_pin_like(draw: st.DrawFn) -> Any:
    """A valid NewPin, then zero to two hostile mutations: a field replaced by a wrong, hostile
    or second value (two image sources), or removed."""
    pin: dict[str, Any] = {
        "schema_version": 1,
        "pin_id": draw(st.text(min_size=1, max_size=12)),
        "board_id": "b",
        "user_id": "u",
        "title": draw(st.text(max_size=30)),
        "created_at": draw(recent_moment),
        "image_b64": base64.b64encode(draw(images)).decode(),
    }
    for key in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2)):
        if draw(st.booleans()) and key in pin:
            del pin[key]
        else:
            pin[key] = draw(MUTATIONS[key])
    return pin


#: 5-320 KB records (a repeated random chunk: cheap to generate, as hostile to escape).
huge = st.tuples(st.binary(min_size=1, max_size=32), st.integers(5_000, 10_000)).map(
    lambda chunk_times: chunk_times[0] * chunk_times[1]
)
raw_values = (
    st.binary(max_size=2_000)
    | huge
    | json_values.map(lambda v: json.dumps(v).encode())
    | new_pin_like().map(lambda p: json.dumps(p).encode())
    | st.none()
)


def records(values: list[bytes | None]) -> list[SourceRecord]:
    return [SourceRecord("fuzz.pins.created", 0, i, v) for i, v in enumerate(values)]


def assert_fits_and_explains(letter: DeadLetter) -> None:
    assert letter.stage in STAGES and letter.reason
    encoded = letter.to_json_bytes()
    assert len(encoded) < KAFKA_MAX_REQUEST_BYTES // 2
    assert DeadLetter.model_validate_json(encoded).payload_sha256 == letter.payload_sha256


class Vectors:
    pin = image = text = [0.5] * 8


@FUZZ
@given(st.lists(raw_values, max_size=8))
def test_any_new_pin_records_parse_to_events_or_dead_letters_and_plan_storable_writes(
    values: list[bytes | None],
) -> None:
    now = datetime.now(UTC)
    accepted, dead = parse_records(records(values), NewPin, now)
    assert sorted([a.record.offset for a in accepted] + [d.source_offset for d in dead]) == list(
        range(len(values))
    )
    for letter in dead:
        assert_fits_and_explains(letter)
    event(f"accepted some: {bool(accepted)}")
    for item in accepted:  # the one record shape, and what the path writes from it
        record = PinRecord.from_new_pin(item.event, "file:///c/x")
        row = record.vector_row(1, Vectors.pin, [item.event.board_id])
        assert EARLIEST_EVENT_TIME <= row.created_at <= now + MAX_EVENT_TIME_AHEAD
        assert epoch_ms(row.created_at) >= 0
        assert 1 <= len(row.pin_id) <= 128
        assert record.node().pin_id == row.pin_id and record.first_save() is not None


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"pin_id": ids, "board_id": ids, "user_id": ids, "ts": recent_moment | any_moment}
        ).map(lambda r: json.dumps(r).encode())
        | st.binary(max_size=100),
        max_size=8,
    )
)
def test_any_repin_records_parse_to_saves_or_dead_letters(values: list[bytes]) -> None:
    accepted, dead = parse_records(records(list(values)), Repin)
    assert len(accepted) + len(dead) == len(values)
    for letter in dead:
        assert_fits_and_explains(letter)
    for save in plan_repin_writes(accepted):
        assert epoch_ms(save.ts) >= 0


@FUZZ
@given(any_moment)
def test_event_times_are_accepted_exactly_inside_the_window(moment: str) -> None:
    value = {"pin_id": "p", "board_id": "b", "user_id": "u", "ts": moment}
    now = datetime.now(UTC)
    accepted, dead = parse_records(records([json.dumps(value).encode()]), Repin, now)
    parsed = datetime.fromisoformat(moment)
    try:
        inside = EARLIEST_EVENT_TIME <= parsed.astimezone(UTC) <= now + MAX_EVENT_TIME_AHEAD
    except OverflowError:
        inside = False
    assert (len(accepted) == 1) == inside
    assert [d.reason for d in dead] == ([] if inside else ["timestamp_out_of_range"])


@FUZZ
@given(st.binary(max_size=2_000) | huge, st.text(max_size=5_000))
def test_every_dead_letter_fits_the_producer_limit(value: bytes, detail: str) -> None:
    letter = dead_letter(SourceRecord("t", 0, 0, value), "parse", "bad_json", detail)
    assert_fits_and_explains(letter)
    assert letter.payload_bytes == len(value)


def run_worker_batch(values: list[bytes | None]) -> None:
    async def scenario(tmp_path: Path) -> None:
        vectors, graph = MemoryVectors(), MemoryGraph()
        worker = await make_worker(tmp_path, vectors, graph)
        try:
            outcome = await worker.handle_new_pins(records(values))
        finally:
            await worker.close()
        for letter in outcome.dead:
            assert_fits_and_explains(letter)
        written = {e.pin_id for e in outcome.embedded}
        event(f"embedded some: {bool(written)}; dead-lettered some: {bool(outcome.dead)}")
        assert written == set(vectors.rows[1]) == set(graph.pins)
        explained = {d.source_offset for d in outcome.dead}
        accepted, _ = parse_records(records(values), NewPin)
        latest = {a.event.pin_id: a.record.offset for a in accepted}  # last one per pin wins
        for offset in range(len(values)):
            superseded = offset not in latest.values() and offset not in explained
            pin_ok = any(latest.get(pin_id) == offset for pin_id in written)
            assert (offset in explained) or pin_ok or superseded

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))


pin_values = new_pin_like().map(lambda p: json.dumps(p).encode())


@settings(FUZZ, max_examples=40)
@given(st.lists(pin_values | pin_values | pin_values | raw_values, max_size=6))
def test_the_worker_survives_any_batch_and_accounts_for_every_record(
    values: list[bytes | None],
) -> None:
    run_worker_batch(values)
