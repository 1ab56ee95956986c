"""Worker domain logic without Kafka: parsing, dead letters, repin plans, dual-write, retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from streams.events import ModelUpdate, NewPin, Repin
from streams.pipeline import (
    Accepted,
    ModelVersions,
    RetryPolicy,
    SourceRecord,
    consumer_lag,
    latest_per_key,
    parse_records,
    plan_model_update,
    plan_repin_writes,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def pin_json(pin_id: str = "p1", **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "pin_id": pin_id,
        "board_id": "b1",
        "user_id": "u1",
        "title": "t",
        "image_uri": "file:///img.png",
        "created_at": NOW.isoformat(),
    }
    fields.update(overrides)
    return json.dumps({k: v for k, v in fields.items() if v is not None}).encode()


def record(value: bytes | None, offset: int = 0) -> SourceRecord:
    return SourceRecord("pins.created", 2, offset, value)


def test_parse_records_isolates_each_bad_record_with_its_reason() -> None:
    records = [
        record(pin_json("good1"), 0),
        record(b"{not json", 1),
        record(pin_json("p", title=None), 2),
        record(pin_json("p", image_uri=None), 3),
        record(b"[1, 2]", 4),
        record(None, 5),
        record(pin_json("p", created_at="yesterday"), 6),
        record(pin_json("p", schema_version=9), 7),
        record(b"\xff\xfe garbage", 8),
        record(pin_json("good2"), 9),
    ]
    accepted, dead = parse_records(records, NewPin)
    assert [a.event.pin_id for a in accepted] == ["good1", "good2"]
    assert [a.record.offset for a in accepted] == [0, 9]
    reasons = {d.source_offset: (d.stage, d.reason) for d in dead}
    assert reasons == {
        1: ("parse", "bad_json"),
        2: ("schema", "missing_field"),
        3: ("schema", "invalid_event"),
        4: ("parse", "not_an_object"),
        5: ("parse", "empty_value"),
        6: ("schema", "invalid_field"),
        7: ("schema", "unsupported_schema_version"),
        8: ("parse", "bad_json"),
    }
    letter = next(d for d in dead if d.source_offset == 8)
    assert letter.source_topic == "pins.created" and letter.source_partition == 2
    assert letter.payload == "\\xff\\xfe garbage"
    assert next(d for d in dead if d.source_offset == 1).payload == "{not json"


def test_latest_per_key_keeps_last_value_in_first_seen_order() -> None:
    items = [("a", 1), ("b", 1), ("a", 2), ("c", 1)]
    assert latest_per_key(items, key=lambda x: x[0]) == [("b", 1), ("a", 2), ("c", 1)]


def test_repin_plan_keeps_every_saver_of_an_edge_within_a_batch() -> None:
    """Regression: the plan kept one save per (pin, board) per batch, so a second user saving
    the same pin to the same board in the same batch was never counted (found by the fault
    tests' exact saver check)."""

    def repin(pin: str, board: str, user: str, minutes: int) -> Accepted[Repin]:
        event = Repin(pin_id=pin, board_id=board, user_id=user, ts=NOW + timedelta(minutes=minutes))
        return Accepted(record(b"{}"), event)

    batch = [repin("p", "b", "u1", 0), repin("q", "b", "u1", 1), repin("p", "b", "u2", 2)]
    saves = plan_repin_writes(batch)
    assert [(s.pin_id, s.board_id, s.user_id, s.ts.minute) for s in saves] == [
        ("p", "b", "u1", 0),
        ("q", "b", "u1", 1),
        ("p", "b", "u2", 2),
    ]


def update(version: int, stage: str) -> ModelUpdate:
    return ModelUpdate.model_validate(
        {
            "version": version,
            "registry_uri": f"r/v{version}",
            "manifest_sha256": "0" * 64,
            "stage": stage,
        }
    )


def test_dual_write_rule_through_a_whole_transition() -> None:
    state = ModelVersions(live=3)
    assert state.write_targets() == (3,)

    candidate = plan_model_update(state, update(4, "candidate"))
    assert candidate.load == 4 and candidate.unload == ()
    assert candidate.state.write_targets() == (3, 4)

    replayed = plan_model_update(candidate.state, update(4, "candidate"))
    assert replayed.ignored and replayed.state == candidate.state and replayed.load is None

    promoted = plan_model_update(candidate.state, update(4, "promoted"))
    assert promoted.load is None and promoted.unload == (3,)
    assert promoted.state == ModelVersions(live=4) and promoted.state.write_targets() == (4,)

    assert plan_model_update(promoted.state, update(4, "promoted")).ignored == "already live"
    assert plan_model_update(promoted.state, update(3, "candidate")).ignored


def test_promotion_without_candidate_loads_and_newer_candidate_replaces_older() -> None:
    direct = plan_model_update(ModelVersions(live=1), update(2, "promoted"))
    assert direct.load == 2 and direct.unload == (1,) and direct.state == ModelVersions(live=2)

    replaced = plan_model_update(ModelVersions(live=1, next=2), update(3, "candidate"))
    assert replaced.load == 3 and replaced.unload == (2,)
    assert replaced.state.write_targets() == (1, 3)

    first = plan_model_update(ModelVersions(), update(1, "candidate"))
    assert first.state.write_targets() == (1,)


def test_retry_policy_backs_off_exponentially_with_a_cap_and_bounded_jitter() -> None:
    policy = RetryPolicy(base_s=0.5, factor=2.0, max_s=5.0, jitter=0.2)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 10)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(2, rand=0.0) == pytest.approx(0.8)
    assert policy.delay(2, rand=0.999) == pytest.approx(1.2, abs=1e-3)
    assert policy.delay(10, rand=0.999) <= 5.0


def test_consumer_lag() -> None:
    assert consumer_lag(100, 40) == 60
    assert consumer_lag(100, None) == 100
    assert consumer_lag(None, 5) == 0
    assert consumer_lag(10, 12) == 0
