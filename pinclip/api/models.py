"""Response (and request) bodies of the query API: what the OpenAPI schema promises."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Consistency = Literal["Strong", "Bounded", "Session", "Eventually"]


class PinHit(BaseModel):
    """One result: the pin's score for this query and what a page needs to show it."""

    pin_id: str
    score: float = Field(description="Cosine similarity to the query, from the live model.")
    title: str | None = Field(
        None,
        description="From the pin's row (cut to 1024 UTF-8 bytes; the pin page has it whole); "
        "None while the pin's content is not known.",
    )
    image_url: str = Field(description="The stored image, served by this API.")
    boards: list[str] = Field(
        description="Boards recorded in the pin's row when it was embedded — the ones `board=` "
        "and `exclude_same_board` filter on; GET /pins/{id} has its current boards."
    )
    shared_boards: list[str] | None = Field(
        None,
        description="Similar-by-id only: `boards` shared with the query pin's recorded boards.",
    )


class QueryAnswer(BaseModel):
    """Common to every search: which model version and Milvus consistency answered it."""

    model_version: int = Field(description="The live version: its encoder and its collection.")
    consistency: Consistency = Field(description="Milvus consistency level of the search.")
    k: int
    results: list[PinHit]


class SimilarAnswer(QueryAnswer):
    pin_id: str
    board: str | None = None
    exclude_same_board: bool = False


class TextAnswer(QueryAnswer):
    query: str


class ImageAnswer(QueryAnswer):
    image_bytes: int = Field(description="Size of the uploaded image.")


class PinDetail(BaseModel):
    pin_id: str
    title: str | None
    description: str | None
    boards: list[str] = Field(description="Boards the pin is saved to now (Neo4j).")
    image_url: str
    created_at: datetime | None = Field(description="Event time of the pin's creation.")
    embedded_at: datetime | None = Field(
        description="When the stream first wrote the pin (None for imported pins)."
    )
    model_version: int = Field(description="Live version the pin was looked up in.")
    embedded: bool = Field(description="Whether the live version's collection holds the pin.")
    consistency: Consistency


class RecentPin(BaseModel):
    pin_id: str
    title: str | None
    image_url: str
    boards: list[str]
    model_versions: list[int]
    embedded_at: datetime
    latency_ms: float = Field(description="created_at → searchable, from the worker.")


class RecentAnswer(BaseModel):
    model_version: int | None = Field(description="Live version now (None before any).")
    source: str = Field(description="Where the strip comes from (the embedded-pins topic).")
    pins: list[RecentPin] = Field(description="Newest first.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    status: Literal["ok", "down", "loading", "no_live_version", "disabled"]
    required: bool = Field(description="A required check that fails makes /ready answer 503.")
    latency_ms: float | None = None
    detail: str = ""


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    live_version: int | None
    checks: dict[str, Check]
