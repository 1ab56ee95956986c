"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `type`.

Every error the API returns — validation, unknown route, a store that is down, a bug — leaves
through `problem_response`, so clients branch on `type` and never parse prose or a plain-text 500.
The catalogue below is the contract (docs/api.md lists it); add to it, never rename a slug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:pinclip:problem:"


@dataclass(frozen=True)
class ProblemKind:
    slug: str
    status: int
    title: str


KINDS: dict[str, ProblemKind] = {
    kind.slug: kind
    for kind in (
        ProblemKind("invalid-request", 422, "The request is not valid"),
        ProblemKind("not-found", 404, "No such resource"),
        ProblemKind("method-not-allowed", 405, "Method not allowed on this resource"),
        ProblemKind("pin-not-found", 404, "No such pin"),
        ProblemKind("image-not-found", 404, "The pin has no stored image"),
        ProblemKind("image-unavailable", 502, "The pin's stored image could not be read"),
        ProblemKind("empty-upload", 400, "No image in the request"),
        ProblemKind("upload-too-large", 413, "The upload is larger than allowed"),
        ProblemKind("unsupported-media-type", 415, "Send the image as raw bytes or multipart"),
        ProblemKind("image-rejected", 422, "The image cannot be used"),
        ProblemKind("too-many-image-queries", 429, "Too many image searches at once"),
        ProblemKind("unauthorized", 401, "A valid API key is required"),
        ProblemKind("no-live-version", 503, "No model version is live yet"),
        ProblemKind("model-unavailable", 503, "The live model could not be loaded"),
        ProblemKind("vector-store-unavailable", 503, "Milvus is not reachable"),
        ProblemKind("graph-store-unavailable", 503, "Neo4j is not reachable"),
        ProblemKind("store-error", 502, "A store refused the query"),
        ProblemKind("internal", 500, "Internal error"),
    )
}


class Problem(BaseModel):
    """RFC 9457 problem details; extension members (`errors`, `reason`, …) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable identifier: urn:pinclip:problem:<slug>.")
    title: str
    status: int
    detail: str = ""
    instance: str | None = Field(None, description="The request path.")


class ApiProblem(Exception):
    """Raise anywhere in a handler; rendered as problem+json with the kind's status."""

    def __init__(
        self,
        slug: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{slug}: {detail}")
        self.kind = KINDS[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_type(slug: str) -> str:
    return TYPE_PREFIX + slug


def problem_response(
    slug: str,
    detail: str = "",
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    kind = KINDS[slug]
    body = Problem(
        type=problem_type(slug),
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=instance,
        **extensions,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=kind.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def openapi_problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem bodies for these statuses (the media type is
    set to problem+json by `problem_media_types` once the schema is built)."""
    return {
        status: {
            "model": Problem,
            "description": ", ".join(sorted(k.slug for k in KINDS.values() if k.status == status)),
        }
        for status in statuses
    }


def problem_media_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx/5xx response in an OpenAPI document is problem+json with the Problem schema
    (FastAPI would document its own 422 body as application/json)."""
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45":
                    response["content"] = {PROBLEM_MEDIA_TYPE: problem}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
