"""Explicit worker configuration (streams never reads the environment; `pinclip` does)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Topics:
    created: str = "pins.created"
    repinned: str = "pins.repinned"
    model_updates: str = "model.updates"
    embedded: str = "pins.embedded"
    dlq: str = "pins.dlq"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """Unique topic names per test run / benchmark, e.g. `t123.pins.created`."""
        base = cls()
        return cls(*(f"{prefix}.{name}" for name in vars(base).values()))


@dataclass(frozen=True)
class WorkerConfig:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topics: Topics = field(default_factory=Topics)
    consumer_group: str = "pinclip-worker"
    topic_partitions: int = 4  # of the topics the worker creates: the most workers of a group
    topic_replication: int = 1  # replication factor of the topics the worker creates
    # stores
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
    milvus_uri: str = "var/milvus.db"
    milvus_token: str = ""
    milvus_alias: str = "pins"
    milvus_consistency: str = "Strong"
    milvus_prefix: str = "pins_v"  # collection name prefix (unique per test run)
    # model
    registry_url: str = "var/registry"
    model_version: int | None = None
    onnx_provider: str = "auto"
    onnx_threads: int = 1  # onnxruntime intra-op threads per batch; 0: one per core
    max_batch: int = 32
    max_delay_ms: float = 10.0
    # stream
    batch_max: int = 64  # most pins per embed-and-write batch (and per take() batch)
    batch_within_s: float = 0.02  # longest wait to fill a take() batch
    decode_workers: int = 0  # image decode pool size; 0: one per core
    decode_processes: bool = False  # decode in processes instead of threads
    max_request_bytes: int = 4 * 1024 * 1024  # largest Milvus upsert request
    max_image_bytes: int = 10_000_000
    image_fetch_timeout_s: float = 5.0
    state_dir: Path = Path("var")
    metrics_port: int | None = 9108  # None: no metrics HTTP server

    @property
    def content_root(self) -> str:
        return str((self.state_dir / "content").resolve())

    def to_json(self) -> str:
        """For starting a worker subprocess: `python -m pinclip.worker CONFIG.json`."""
        values = {**vars(self), "topics": vars(self.topics), "state_dir": str(self.state_dir)}
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        values = json.loads(text)
        values["topics"] = Topics(**values["topics"])
        values["state_dir"] = Path(values["state_dir"])
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WorkerConfig:
        """Build from `pinclip.settings.Settings` (passed in, not imported: no env reads here)."""
        values: dict[str, Any] = {
            "kafka_bootstrap": settings.kafka_bootstrap,
            "topics": Topics(
                settings.topic_created,
                settings.topic_repinned,
                settings.topic_model_updates,
                settings.topic_embedded,
                settings.topic_dlq,
            ),
            "consumer_group": settings.consumer_group,
            "topic_partitions": settings.topic_partitions,
            "topic_replication": settings.topic_replication,
            "neo4j_uri": settings.neo4j_uri,
            "neo4j_user": settings.neo4j_user,
            "neo4j_password": settings.neo4j_password.get_secret_value(),
            "neo4j_database": settings.neo4j_database,
            "milvus_uri": settings.milvus_uri,
            "milvus_token": settings.milvus_token.get_secret_value(),
            "milvus_alias": settings.milvus_alias,
            "milvus_consistency": settings.milvus_consistency,
            "milvus_prefix": settings.milvus_prefix,
            "batch_max": settings.batch_max,
            "decode_workers": settings.decode_workers,
            "decode_processes": settings.decode_processes,
            "registry_url": settings.registry_url,
            "model_version": settings.model_version,
            "onnx_provider": settings.onnx_provider,
            "onnx_threads": settings.onnx_threads,
            "max_batch": settings.max_batch,
            "max_delay_ms": settings.max_delay_ms,
            "max_image_bytes": settings.max_image_bytes,
            "image_fetch_timeout_s": settings.image_fetch_timeout_s,
            "state_dir": Path(settings.state_dir),
            "metrics_port": settings.metrics_port,
        }
        values.update(overrides)
        return cls(**values)
