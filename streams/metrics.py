"""Prometheus metrics of the worker (module-level: one registry per process)."""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_IN = Counter("pinclip_events_in_total", "Records consumed, by event type.", ["type"])
EVENTS_OUT = Counter(
    "pinclip_events_out_total",
    "Results produced: pins written, saves, embedded, dead letters.",
    ["type"],
)
BATCH_SIZE = Histogram(
    "pinclip_batch_size",
    "Records per micro-batch.",
    ["type"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
ENCODE_SECONDS = Histogram(
    "pinclip_encode_seconds",
    "Wall time to encode one micro-batch (all target versions).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FRESHNESS_SECONDS = Histogram(
    "pinclip_freshness_seconds",
    "NewPin created_at → written to Milvus and Neo4j (searchable at `consistency`).",
    ["consistency"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
DLQ = Counter("pinclip_dlq_total", "Dead letters, by stage and reason.", ["stage", "reason"])
WRITE_RETRIES = Counter(
    "pinclip_write_retries_total", "Failed store writes that were retried.", ["sink"]
)
CONSUMER_LAG = Gauge(
    "pinclip_consumer_lag", "Records not yet processed, per partition.", ["topic", "partition"]
)
MODEL_VERSIONS = Gauge("pinclip_model_version", "Loaded model versions (role=live|next).", ["role"])


def serve_metrics(port: int, host: str = "127.0.0.1") -> bool:
    """Expose /metrics on `host:port` (a daemon thread). Loopback by default: the endpoint has
    no authentication, so binding anything wider is an explicit setting (PINCLIP_METRICS_HOST).
    A taken port is logged, not fatal: losing metrics must not stop the pipeline (e.g. a second
    worker on one machine)."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        structlog.get_logger(__name__).warning(
            "metrics_port_unavailable", host=host, port=port, error=str(exc)
        )
        return False
    return True
