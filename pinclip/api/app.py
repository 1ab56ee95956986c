"""create_api: one place wires the query API — routes, limits, auth, CORS, metrics, errors.

Dependencies come in by injection (`ApiDeps`): the stores and encoders are built elsewhere
(`pinclip.api.wiring` from settings; tests pass the real stores they set up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pinclip.api.config import ApiConfig
from pinclip.api.early_answers import DrainBeforeEarlyAnswer
from pinclip.api.models import Check, Health, Readiness
from pinclip.api.observability import AccessMiddleware, ApiMetrics
from pinclip.api.ports import ApiDeps
from pinclip.api.problems import ApiProblem, problem_media_types, problem_response
from pinclip.api.queries import QueryService, call_store
from pinclip.api.routes import build_router
from pinclip.api.security import ApiKeyMiddleware

log = structlog.get_logger(__name__)
CHECK_TIMEOUT_S = 3.0
STATIC = resources.files("pinclip.api") / "static"
_BACKGROUND: set[asyncio.Task[None]] = set()


def create_api(deps: ApiDeps, config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()
    metrics = ApiMetrics()
    queries = QueryService(deps, config, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if deps.recent is not None:
            deps.recent.start()
        preload = asyncio.create_task(_preload_live_model(deps)) if config.preload_model else None
        try:
            yield
        finally:
            if preload is not None:
                preload.cancel()
            if deps.recent is not None:
                deps.recent.stop()
            await deps.encoders.close()
            await deps.images.aclose()

    api = FastAPI(
        title="PinCLIP Stream query API",
        version="1",
        description="Similar pins by id, text or image, answered by one live model version.",
        lifespan=lifespan,
    )
    api.state.config = config
    api.state.metrics = metrics
    api.state.queries = queries
    _install_error_handlers(api, queries)
    api.include_router(build_router(config, queries, metrics))
    _add_operations(api, deps, metrics)
    _add_gallery(api)
    if config.cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", config.api_key_header],
        )
    if config.auth_enabled:
        api.add_middleware(ApiKeyMiddleware, key=config.api_key, header=config.api_key_header)
    # Outside auth and CORS, so their early answers to an upload are drained too.
    api.add_middleware(
        DrainBeforeEarlyAnswer,
        max_bytes=config.max_discard_bytes,
        timeout_s=config.discard_timeout_s,
    )
    api.add_middleware(AccessMiddleware, metrics=metrics)
    _document(api, config)
    return api


async def _preload_live_model(deps: ApiDeps) -> None:
    """Load the live version's encoder at start, so the first query does not pay for it."""
    try:
        version = await call_store(deps.vectors.live_version)
        if version is not None:
            await deps.encoders.get(int(version))
    except Exception as exc:  # /ready reports it; queries retry the load
        log.warning("api_preload_failed", error=f"{type(exc).__name__}: {exc}")


# --- errors ------------------------------------------------------------------------------------


def _store_problems() -> dict[type[Exception], tuple[str, dict[str, str]]]:
    """Store and encoder exceptions → problem slug and headers (most specific first: the
    handler is chosen by the exception's MRO, so subclasses map on their own)."""
    from neo4j.exceptions import DriverError, Neo4jError

    from encoder.preprocess import ImageRejected
    from graph_store import GraphStoreUnavailable
    from vector_store import NoLiveVersion, UnknownVersion, VectorStoreError, VectorStoreUnavailable

    retry = {"Retry-After": "5"}
    return {
        ImageRejected: ("image-rejected", {}),
        NoLiveVersion: ("no-live-version", retry),
        UnknownVersion: ("no-live-version", retry),
        VectorStoreUnavailable: ("vector-store-unavailable", retry),
        GraphStoreUnavailable: ("graph-store-unavailable", retry),
        DriverError: ("graph-store-unavailable", retry),
        VectorStoreError: ("store-error", {}),
        Neo4jError: ("store-error", {}),
    }


def _install_error_handlers(api: FastAPI, queries: QueryService) -> None:
    @api.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.kind.slug,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e["type"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}"
        return problem_response("invalid-request", detail, instance=request.url.path, errors=errors)

    @api.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code)
        if slug is None:
            slug = "invalid-request" if exc.status_code < 500 else "internal"
        response = problem_response(slug, str(exc.detail), instance=request.url.path)
        if exc.status_code == 405 and exc.headers:
            response.headers.update(exc.headers)
        return response

    for exc_type, (slug, headers) in _store_problems().items():
        api.add_exception_handler(exc_type, _store_handler(slug, headers, queries))

    @api.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback and re-raises after this answer (a bug, not a fault).
        return problem_response(
            "internal", "an internal error occurred; it was logged", instance=request.url.path
        )


def _store_handler(
    slug: str, headers: dict[str, str], queries: QueryService
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if slug == "no-live-version":
            queries.forget_live_version()
        log.warning("api_dependency_error", problem=slug, error=f"{type(exc).__name__}: {exc}")
        extensions = {"reason": str(getattr(exc, "reason", ""))} if slug == "image-rejected" else {}
        # Store messages can name internal hosts and collections: only our own texts go out.
        own_words = slug in ("image-rejected", "no-live-version")
        detail = str(exc)[:300] if own_words else "logged under this response's X-Request-ID"
        return problem_response(
            slug, detail, instance=request.url.path, headers=headers, **extensions
        )

    return handle


# --- operations: health, readiness, metrics --------------------------------------------------


async def _timed_check(
    name: str, required: bool, probe: Callable[[], Awaitable[str | None]]
) -> tuple[str, Check]:
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(probe(), CHECK_TIMEOUT_S) or "ok"
        detail = ""
    except Exception as exc:
        status, detail = "down", f"{type(exc).__name__}: {exc}"[:300]
    latency = round((time.perf_counter() - started) * 1000, 2)
    return name, Check(status=status, required=required, latency_ms=latency, detail=detail)  # type: ignore[arg-type]


def _add_operations(api: FastAPI, deps: ApiDeps, metrics: ApiMetrics) -> None:
    @api.get("/health", response_model=Health, tags=["operations"])
    async def health() -> Health:
        """Liveness: the process answers. Never touches a dependency, never needs a key."""
        return Health()

    @api.get("/ready", response_model=Readiness, tags=["operations"])
    async def ready() -> JSONResponse:
        """Readiness: Milvus (live alias), Neo4j, the live model loaded, Kafka reachable."""
        live: dict[str, int | None] = {"version": None}

        async def milvus() -> str | None:
            live["version"] = await call_store(deps.vectors.live_version)
            return None if live["version"] is not None else "no_live_version"

        async def neo4j() -> None:
            await call_store(deps.graph.ping)

        async def kafka() -> str | None:
            if deps.recent is None:
                return "disabled"
            await deps.recent.check()
            return None

        results = dict(
            await asyncio.gather(
                _timed_check("milvus", True, milvus),
                _timed_check("neo4j", True, neo4j),
                _timed_check("kafka", False, kafka),
            )
        )
        version = live["version"]
        if version is None:
            model = Check(status="no_live_version", required=True, detail="no live version")
        elif deps.encoders.is_loaded(version):
            model = Check(status="ok", required=True, detail=f"v{version} loaded")
        else:
            task = asyncio.create_task(_preload_live_model(deps))  # idempotent per version
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            model = Check(status="loading", required=True, detail=f"v{version} loading")
        results["model"] = model
        ok = all(c.status in ("ok", "disabled") for c in results.values() if c.required)
        body = Readiness(
            status="ready" if ok else "not_ready", live_version=version, checks=results
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)

    @api.get("/metrics", response_class=Response, tags=["operations"])
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests by route and status, encoder and search times."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


# --- gallery and schema ------------------------------------------------------------------------


def _add_gallery(api: FastAPI) -> None:
    index = (STATIC / "index.html").read_text(encoding="utf-8")

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def gallery() -> HTMLResponse:
        return HTMLResponse(index, headers={"Cache-Control": "no-cache"})

    api.mount("/static", StaticFiles(directory=str(STATIC)), name="static")


def _document(api: FastAPI, config: ApiConfig) -> None:
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = problem_media_types(build())
            if config.auth_enabled:
                schema["components"]["securitySchemes"] = {
                    "apiKey": {"type": "apiKey", "in": "header", "name": config.api_key_header},
                    "bearer": {"type": "http", "scheme": "bearer"},
                }
                schema["security"] = [{"apiKey": []}, {"bearer": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
