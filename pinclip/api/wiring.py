"""Builds the API's dependencies from settings, with the one factory (`pinclip.factory`) that
builds every store and encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from pinclip.api.app import create_api
from pinclip.api.config import ApiConfig
from pinclip.api.encoders import VersionedEncoders
from pinclip.api.images import ContentImageSource
from pinclip.api.ports import ApiDeps
from pinclip.api.recent import KafkaRecentFeed
from pinclip.settings import Settings
from streams.content import FetchPolicy


def build_deps(
    settings: Settings,
    *,
    topic_embedded: str | None = None,
    fetch_policy: FetchPolicy | None = None,
) -> ApiDeps:
    from graph_store import RetryPolicy
    from pinclip.factory import Factory

    factory = Factory.from_settings(settings)
    timeout = settings.api_store_timeout_s
    vectors = factory.vector_store(timeout_s=timeout)  # dim: the registry's newest model
    # A query waits for one short retry, not the worker's long outage budget: the client retries.
    graph = factory.graph_store(
        retry=RetryPolicy(attempts=2, initial_delay_s=0.2),
        transaction_retry_s=timeout,
        connection_timeout_s=timeout,
    )
    encoders = VersionedEncoders(
        settings.registry_url,
        Path(settings.state_dir) / "model-cache",
        settings.onnx_provider,
        open_service=lambda model_dir: factory.encoder_service(
            model_dir, max_batch=16, max_delay_ms=2.0
        ),
    )
    # Stored images are read through the shared fetch path: the configured policy plus the
    # worker's content store (inline images), which is always readable.
    content_root = str((Path(settings.state_dir) / "content").resolve())
    policy = fetch_policy or FetchPolicy.from_settings(settings)
    images = ContentImageSource(policy.with_roots(content_root))
    recent = KafkaRecentFeed(
        settings.kafka_bootstrap,
        topic_embedded or settings.topic_embedded,
        settings.api_recent_pins,
    )
    return ApiDeps(vectors=vectors, graph=graph, encoders=encoders, images=images, recent=recent)


def create_api_from_settings(
    settings: Settings, *, deps: ApiDeps | None = None, **config_overrides: Any
) -> FastAPI:
    """The API on the configured Milvus, Neo4j, model registry and Kafka."""
    return create_api(
        deps or build_deps(settings), ApiConfig.from_settings(settings, **config_overrides)
    )
