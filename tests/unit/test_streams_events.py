"""Event contract: what producers may send, and the published JSON Schemas match the models."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from streams.events import (
    MAX_INLINE_IMAGE_BYTES,
    DeadLetter,
    ModelUpdate,
    NewPin,
    Repin,
    decode_inline_image,
)
from streams.jsonschema import SCHEMA_DIR, render_schemas

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def new_pin(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "pin_id": "p1",
        "board_id": "b1",
        "user_id": "u1",
        "title": "Red bicycle",
        "description": "vintage",
        "image_uri": "file:///tmp/x.png",
        "created_at": NOW.isoformat(),
    }
    fields.update(overrides)
    return fields


def test_new_pin_round_trips_through_json() -> None:
    pin = NewPin.model_validate(new_pin(is_ad=True))
    again = NewPin.model_validate_json(pin.to_json_bytes())
    assert again == pin
    assert json.loads(pin.to_json_bytes())["schema_version"] == 1


@pytest.mark.parametrize(
    "image",
    [
        {"image_uri": None},
        {"image_b64": base64.b64encode(b"x").decode()},
    ],
)
def test_new_pin_needs_exactly_one_image_source(image: dict[str, object]) -> None:
    fields = new_pin(**image)
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(ValidationError, match="exactly one of image_uri or image_b64"):
        NewPin.model_validate(fields)


@pytest.mark.parametrize("uri", ["ftp://host/x.png", "/no/scheme.png", "gs://bucket/x"])
def test_new_pin_rejects_unsupported_uri_schemes(uri: str) -> None:
    with pytest.raises(ValidationError, match="not supported"):
        NewPin.model_validate(new_pin(image_uri=uri))


@pytest.mark.parametrize("uri", ["file:///a.png", "s3://b/k.jpg", "http://h/x", "https://h/x"])
def test_new_pin_accepts_supported_uri_schemes(uri: str) -> None:
    assert NewPin.model_validate(new_pin(image_uri=uri)).image_uri == uri


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValidationError):
        NewPin.model_validate(new_pin(created_at="2026-11-25T12:00:00"))
    with pytest.raises(ValidationError):
        Repin.model_validate({"pin_id": "p", "board_id": "b", "user_id": "u", "ts": "2026-01-01"})


def test_inline_image_helper_and_size_cap() -> None:
    fields = new_pin()
    del fields["image_uri"]
    pin = NewPin.with_inline_image(b"\x89PNG....", **fields)
    assert pin.image_b64 is not None
    assert decode_inline_image(pin.image_b64) == b"\x89PNG...."
    huge = base64.b64encode(b"\0" * (MAX_INLINE_IMAGE_BYTES + 3)).decode()
    with pytest.raises(ValidationError):
        NewPin.model_validate({**fields, "image_b64": huge})


def test_decode_inline_image_is_strict() -> None:
    with pytest.raises(ValueError, match="bad base64"):
        decode_inline_image("not base64 !!")
    with pytest.raises(OverflowError):
        decode_inline_image(base64.b64encode(b"12345").decode(), max_bytes=4)


def test_unknown_fields_are_ignored_and_wrong_schema_version_refused() -> None:
    assert NewPin.model_validate(new_pin(extra_field=1)).pin_id == "p1"
    with pytest.raises(ValidationError):
        NewPin.model_validate(new_pin(schema_version=2))


def test_model_update_validates_hash_and_stage() -> None:
    ok = {"version": 2, "registry_uri": "var/registry/v2", "manifest_sha256": "a" * 64}
    assert ModelUpdate.model_validate({**ok, "stage": "candidate"}).version == 2
    with pytest.raises(ValidationError):
        ModelUpdate.model_validate({**ok, "stage": "shadow"})
    with pytest.raises(ValidationError):
        ModelUpdate.model_validate({**ok, "stage": "promoted", "manifest_sha256": "xyz"})


def test_dead_letter_has_a_failure_time() -> None:
    letter = DeadLetter(
        source_topic="t",
        source_partition=0,
        source_offset=3,
        stage="schema",
        reason="r",
        payload="{",
    )
    assert letter.failed_at.tzinfo is not None


def test_committed_json_schemas_match_the_models() -> None:
    rendered = render_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert committed == rendered, "run `python -m streams.jsonschema` and commit streams/schemas/"


def test_json_schema_describes_the_required_fields() -> None:
    schema = json.loads(render_schemas()["new_pin.json"])
    assert {"pin_id", "board_id", "user_id", "title", "created_at"} <= set(schema["required"])
    assert schema["oneOf"] == [{"required": ["image_uri"]}, {"required": ["image_b64"]}]
