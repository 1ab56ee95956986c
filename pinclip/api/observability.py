"""Metrics and access logs: one pure-ASGI middleware times each request once and feeds both.

Labels use the *route template* (`/pins/{pin_id}/similar`), never the raw path, so a scan of
random URLs cannot explode the metric's cardinality. Each app owns its CollectorRegistry (tests
and the benchmark build many apps in one process). Query strings are not logged: text queries
may be personal.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("pinclip.api.access")

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "pinclip_api_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "pinclip_api_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.encode_seconds = Histogram(
            "pinclip_api_encode_seconds",
            "Query encoding (text or image, decode included)",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.search_seconds = Histogram(
            "pinclip_api_search_seconds",
            "Milvus time per query (vector lookup included for similar)",
            ["query", "consistency"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.hydrate_seconds = Histogram(
            "pinclip_api_hydrate_seconds",
            "Neo4j read of the results' titles, images and boards",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.image_queries_in_flight = Gauge(
            "pinclip_api_image_queries_in_flight", "Image searches being served", registry=r
        )
        self.live_version = Gauge(
            "pinclip_api_live_version", "Model version of the last answered query", registry=r
        )

    @contextmanager
    def timed(self, histogram: Histogram, **labels: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            target = histogram.labels(**labels) if labels else histogram
            target.observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's path template (the router records its match in the scope it was
    given), or "unmatched" for 404s and scans."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


class AccessMiddleware:
    """Request id (X-Request-ID in and out), access log line, request count and latency."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            labels = {"route": route, "method": scope["method"], "status": str(status)}
            self.metrics.requests.labels(**labels).inc()
            self.metrics.request_seconds.labels(**labels).observe(elapsed)
            log.info(
                "http_request",
                method=scope["method"],
                route=route,
                path=scope["path"][:200],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                client=(scope.get("client") or ("", 0))[0],
            )
            structlog.contextvars.unbind_contextvars("request_id")
