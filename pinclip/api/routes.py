"""The query endpoints: pins, similar pins, text and image search, the recent strip.

Limits (k, text length, upload size, concurrent image queries) come from ApiConfig and are
written into the OpenAPI schema, so generated clients and schemathesis see the real bounds.
"""

import asyncio
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field, create_model
from starlette.responses import Response

from pinclip.api.config import ApiConfig
from pinclip.api.images import serve_image
from pinclip.api.models import ImageAnswer, PinDetail, RecentAnswer, SimilarAnswer, TextAnswer
from pinclip.api.observability import ApiMetrics
from pinclip.api.problems import ApiProblem, openapi_problems
from pinclip.api.queries import QueryService
from pinclip.api.uploads import read_image_upload

PinId = Annotated[str, Path(min_length=1, max_length=128, description="The pin's id.")]
Board = Annotated[
    str | None, Query(min_length=1, max_length=128, description="Only pins on this board.")
]
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image: raw bytes, or multipart/form-data with a file field 'image'.",
        "content": {
            **{
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("image/jpeg", "image/png", "image/webp", "application/octet-stream")
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
        },
    }
}
STORE_ERRORS = (401, 422, 502, 503)


def image_url_builder(request: Request) -> Callable[[str], str]:
    """Absolute URL of a pin's image (ids may hold '/', '?', '#': percent-encoded)."""
    base = str(request.base_url).rstrip("/")
    return lambda pin_id: f"{base}/pins/{quote(pin_id, safe='')}/image"


def _encodable(value: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"): no store or tokenizer can take them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


Utf8 = Annotated[str, AfterValidator(_encodable)]


def text_body_model(config: ApiConfig) -> type[BaseModel]:
    """The POST /search/text body, with this deployment's limits in its schema."""
    return create_model(
        "TextQuery",
        q=(Utf8, Field(min_length=1, max_length=config.max_text_chars)),
        k=(int, Field(10, ge=1, le=config.max_k)),
        board=(Utf8 | None, Field(None, min_length=1, max_length=128)),
    )


def build_router(config: ApiConfig, queries: QueryService, metrics: ApiMetrics) -> APIRouter:
    router = APIRouter()
    K = Annotated[int, Query(ge=1, le=config.max_k, description="Number of results.")]
    Text = Annotated[
        str, Query(min_length=1, max_length=config.max_text_chars, description="Query text.")
    ]
    TextQuery = text_body_model(config)
    image_slots = asyncio.Semaphore(config.max_image_queries)

    @router.get("/recent", response_model=RecentAnswer, responses=openapi_problems(401, 502, 503))
    async def recent(
        request: Request, limit: Annotated[int, Query(ge=1, le=config.recent_pins)] = 12
    ) -> RecentAnswer:
        """Pins in the order the stream embedded them, newest first (the gallery's strip)."""
        return await queries.recent(limit, image_url_builder(request))

    @router.get(
        "/pins/{pin_id:path}/similar",
        response_model=SimilarAnswer,
        responses=openapi_problems(404, *STORE_ERRORS),
    )
    async def similar(
        request: Request,
        pin_id: PinId,
        k: K = 10,
        board: Board = None,
        exclude_same_board: Annotated[
            bool, Query(description="Leave out pins that share a board with this one.")
        ] = False,
    ) -> SimilarAnswer:
        """Nearest pins to a stored pin, by its embedding in the live version."""
        return await queries.similar(
            pin_id, k, board, exclude_same_board, image_url_builder(request)
        )

    @router.get(
        "/pins/{pin_id:path}/image",
        response_class=Response,
        responses={
            200: {"content": {m: {} for m in ("image/jpeg", "image/png", "image/webp")}},
            304: {"description": "Not modified (If-None-Match matched the ETag)."},
            **openapi_problems(404, 401, 422, 502, 503),
        },
    )
    async def pin_image(
        pin_id: PinId,
        if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
    ) -> Response:
        """The pin's stored image, with ETag and Cache-Control."""
        uri = await queries.image_uri(pin_id)
        return await serve_image(uri, queries.deps.images, config, if_none_match)

    @router.get(
        "/pins/{pin_id:path}",
        response_model=PinDetail,
        responses=openapi_problems(404, *STORE_ERRORS),
    )
    async def pin(request: Request, pin_id: PinId) -> PinDetail:
        """A pin's content, boards and embedding status (read-your-writes consistency)."""
        return await queries.pin(pin_id, image_url_builder(request))

    @router.get(
        "/search/text", response_model=TextAnswer, responses=openapi_problems(*STORE_ERRORS)
    )
    async def search_text_get(
        request: Request, q: Text, k: K = 10, board: Board = None
    ) -> TextAnswer:
        """Pins matching a text query (the text embedding searches the pin space)."""
        return await queries.by_text(q, k, board, image_url_builder(request))

    @router.post(
        "/search/text", response_model=TextAnswer, responses=openapi_problems(*STORE_ERRORS)
    )
    async def search_text_post(request: Request, body: TextQuery) -> TextAnswer:  # type: ignore[valid-type]
        """The same as GET, with the query in a JSON body (long or non-ASCII text)."""
        values: dict[str, Any] = body.model_dump()  # type: ignore[attr-defined]
        return await queries.by_text(
            values["q"], values["k"], values["board"], image_url_builder(request)
        )

    @router.post(
        "/search/image",
        response_model=ImageAnswer,
        openapi_extra=IMAGE_BODY,
        responses=openapi_problems(400, 413, 415, 429, *STORE_ERRORS),
    )
    async def search_image(request: Request, k: K = 10, board: Board = None) -> ImageAnswer:
        """Pins similar to an uploaded image (raw body or multipart field 'image')."""
        if image_slots.locked():
            raise ApiProblem(
                "too-many-image-queries",
                f"{config.max_image_queries} image searches already running; retry shortly",
                headers={"Retry-After": "1"},
            )
        async with image_slots:
            metrics.image_queries_in_flight.inc()
            try:
                image = await read_image_upload(request, config.max_upload_bytes)
                return await queries.by_image(image, k, board, image_url_builder(request))
            finally:
                metrics.image_queries_in_flight.dec()

    return router
