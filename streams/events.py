"""Event models: the JSON contract between producers and the worker.

Plain JSON with a `schema_version` so any Kafka client (kafka-python, kcat, another language via
the generated JSON Schemas in `streams/schemas/`) can produce them. Unknown fields are ignored so
producers can add fields before the worker knows them; missing or malformed fields are errors.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
#: Inline images are for small thumbnails and tests; large images belong behind a URI.
MAX_INLINE_IMAGE_BYTES = 2_000_000
MAX_INLINE_IMAGE_B64_CHARS = 4 * ((MAX_INLINE_IMAGE_BYTES + 2) // 3)
IMAGE_URI_SCHEMES = ("file", "s3", "http", "https")

#: Ids are 1-128 printable characters: no control characters (NUL, newlines, escapes) that would
#: end up in Neo4j, Milvus, Kafka keys, logs and URLs.
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _iso_only(value: object) -> object:
    """Event times are ISO 8601 strings with a timezone (or datetimes from Python): a bare
    number would be guessed as seconds or milliseconds since the epoch, so it is refused."""
    if isinstance(value, (int, float)):
        raise ValueError("must be an ISO 8601 date-time with a timezone, not a number")
    return value


#: An event's own time (created_at, ts): aware, ISO 8601; the window is checked at parse time
#: (streams.pipeline.event_time_problem).
EventTime = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Common base: schema version, JSON in and out."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class NewPin(Event):
    """A pin just created; carries its image by URI or inline (base64)."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={"oneOf": [{"required": ["image_uri"]}, {"required": ["image_b64"]}]},
    )

    pin_id: Id
    board_id: Id
    user_id: Id
    title: str = Field(max_length=1_000)
    description: str = Field("", max_length=10_000)
    image_uri: str | None = Field(
        None, max_length=4_096, description="file://, s3:// or http(s):// URI of the image."
    )
    image_b64: str | None = Field(
        None,
        max_length=MAX_INLINE_IMAGE_B64_CHARS,
        description=f"Inline image, standard base64, at most {MAX_INLINE_IMAGE_BYTES} bytes.",
    )
    created_at: EventTime
    is_ad: bool = False

    @model_validator(mode="after")
    def _exactly_one_image_source(self) -> NewPin:
        if (self.image_uri is None) == (self.image_b64 is None):
            raise ValueError("exactly one of image_uri or image_b64 is required")
        if self.image_uri is not None:
            scheme = urlparse(self.image_uri).scheme
            if scheme not in IMAGE_URI_SCHEMES:
                raise ValueError(
                    f"image_uri scheme {scheme!r} not supported; use one of {IMAGE_URI_SCHEMES}"
                )
        return self

    @classmethod
    def with_inline_image(cls, image: bytes, **fields: object) -> NewPin:
        """Convenience for producers: base64-encodes `image` into `image_b64`."""
        return cls.model_validate({**fields, "image_b64": base64.b64encode(image).decode()})


class Repin(Event):
    """A pin saved to a board (an edge in the Pin–Board graph)."""

    pin_id: Id
    board_id: Id
    user_id: Id
    ts: EventTime


class ModelUpdate(Event):
    """A model version in the registry: `candidate` starts dual-writing, `promoted` finishes it."""

    version: int = Field(ge=1)
    registry_uri: str = Field(min_length=1, description="URI of the model directory v<N>.")
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    stage: Literal["candidate", "promoted"]


class PinEmbedded(Event):
    """Emitted once a pin is written to Milvus and Neo4j, i.e. searchable."""

    pin_id: Id
    model_versions: list[int]
    created_at: AwareDatetime = Field(description="Event time of the NewPin.")
    embedded_at: AwareDatetime
    latency_ms: float = Field(description="embedded_at - created_at, milliseconds.")


DeadLetterStage = Literal["parse", "schema", "fetch", "decode", "encode", "write", "model"]


class DeadLetter(Event):
    """An input the worker could not use, with where it came from and why."""

    source_topic: str
    source_partition: int
    source_offset: int
    stage: DeadLetterStage
    reason: str = Field(description="Short machine-readable code, e.g. missing_field, timeout.")
    detail: str = ""
    pin_id: str | None = None
    payload: str = Field(
        description="The original record value as text (bad bytes escaped), at most its first "
        "64 KiB: see payload_bytes / payload_sha256 / payload_truncated."
    )
    payload_bytes: int = Field(0, description="Length of the original record value, bytes.")
    payload_sha256: str = Field("", description="sha256 (hex) of the original record value.")
    payload_truncated: bool = Field(False, description="True when `payload` is only a prefix.")
    failed_at: AwareDatetime = Field(default_factory=utc_now)


def decode_inline_image(image_b64: str, max_bytes: int = MAX_INLINE_IMAGE_BYTES) -> bytes:
    """Strict base64 decode; ValueError on bad input, OverflowError above `max_bytes`."""
    try:
        data = base64.b64decode(image_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64: {exc}") from exc
    if len(data) > max_bytes:
        raise OverflowError(f"inline image {len(data)} bytes > {max_bytes}")
    return data


EVENT_MODELS: dict[str, type[Event]] = {
    "new_pin": NewPin,
    "repin": Repin,
    "model_update": ModelUpdate,
    "pin_embedded": PinEmbedded,
    "dead_letter": DeadLetter,
}
