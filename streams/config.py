"""Explicit worker configuration (streams never reads the environment; `pinclip` does)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from streams import defaults
from streams.content.policy import FetchPolicy, FetchSettings
from streams.content.store import content_root

SECRET_FIELDS = ("neo4j_password", "milvus_token")


class WorkerSettings(FetchSettings, Protocol):
    """What a WorkerConfig is read from: `pinclip.settings.Settings` has every member (mypy checks
    it wherever pinclip passes its Settings in; streams never imports pinclip)."""

    @property
    def batch_max(self) -> int: ...
    @property
    def consumer_group(self) -> str: ...
    @property
    def decode_processes(self) -> bool: ...
    @property
    def decode_workers(self) -> int: ...
    @property
    def kafka_bootstrap(self) -> str: ...
    @property
    def kafka_session_timeout_s(self) -> float: ...
    @property
    def max_batch(self) -> int: ...
    @property
    def max_delay_ms(self) -> float: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...
    @property
    def milvus_alias(self) -> str: ...
    @property
    def milvus_consistency(self) -> str: ...
    @property
    def milvus_prefix(self) -> str: ...
    @property
    def milvus_token(self) -> SecretStr: ...
    @property
    def milvus_uri(self) -> str: ...
    @property
    def model_version(self) -> int | None: ...
    @property
    def neo4j_database(self) -> str: ...
    @property
    def neo4j_password(self) -> SecretStr: ...
    @property
    def neo4j_uri(self) -> str: ...
    @property
    def neo4j_user(self) -> str: ...
    @property
    def onnx_provider(self) -> str: ...
    @property
    def onnx_threads(self) -> int: ...
    @property
    def progress_interval_s(self) -> float: ...
    @property
    def registry_url(self) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def topic_created(self) -> str: ...
    @property
    def topic_dlq(self) -> str: ...
    @property
    def topic_embedded(self) -> str: ...
    @property
    def topic_model_updates(self) -> str: ...
    @property
    def topic_partitions(self) -> int: ...
    @property
    def topic_reembed(self) -> str: ...
    @property
    def topic_repinned(self) -> str: ...
    @property
    def topic_replication(self) -> int: ...


@dataclass(frozen=True)
class Topics:
    created: str = defaults.TOPIC_CREATED
    repinned: str = defaults.TOPIC_REPINNED
    model_updates: str = defaults.TOPIC_MODEL_UPDATES
    embedded: str = defaults.TOPIC_EMBEDDED
    dlq: str = defaults.TOPIC_DLQ
    reembed: str = defaults.TOPIC_REEMBED

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """Unique topic names per test run / benchmark, e.g. `t123.pins.created`."""
        base = cls()
        return cls(*(f"{prefix}.{name}" for name in vars(base).values()))


def _no_secret() -> SecretStr:
    return SecretStr("")


@dataclass(frozen=True)
class WorkerConfig:
    kafka_bootstrap: str = defaults.KAFKA_BOOTSTRAP
    topics: Topics = field(default_factory=Topics)
    consumer_group: str = defaults.CONSUMER_GROUP
    topic_partitions: int = 4  # of the topics the worker creates: the most workers of a group
    topic_replication: int = 1  # replication factor of the topics the worker creates
    session_timeout_s: float = 60.0  # a crashed worker's partitions move after this long
    # stores
    neo4j_uri: str = defaults.NEO4J_URI
    neo4j_user: str = defaults.NEO4J_USER
    neo4j_password: SecretStr = field(default_factory=_no_secret)  # a str is wrapped
    neo4j_database: str = defaults.NEO4J_DATABASE
    milvus_uri: str = defaults.MILVUS_URI
    milvus_token: SecretStr = field(default_factory=_no_secret)
    milvus_alias: str = defaults.MILVUS_ALIAS
    milvus_consistency: str = defaults.MILVUS_CONSISTENCY
    milvus_prefix: str = defaults.MILVUS_PREFIX  # collection name prefix (unique per test run)
    # model
    registry_url: str = defaults.REGISTRY_URL
    model_version: int | None = None
    onnx_provider: str = defaults.ONNX_PROVIDER
    onnx_threads: int = defaults.ONNX_THREADS  # onnxruntime threads per batch; 0: one per core
    max_batch: int = 32
    max_delay_ms: float = 10.0
    # stream
    batch_max: int = 64  # most pins per embed-and-write batch (repins: 4x per take() batch)
    batch_within_s: float = 0.05  # longest wait to fill a repin take() batch
    decode_workers: int = 0  # image decode pool size; 0: one per core
    decode_processes: bool = False  # decode in processes instead of threads
    max_request_bytes: int = 4 * 1024 * 1024  # largest Milvus upsert request
    fetch: FetchPolicy = field(default_factory=FetchPolicy)  # + content_root, always readable
    state_dir: Path = Path("var")
    metrics_port: int | None = 9108  # None: no metrics HTTP server
    progress_interval_s: float = 10.0  # a `worker_progress` log line this often; 0: none
    metrics_host: str = "127.0.0.1"  # loopback: /metrics is not for the network by default

    def __post_init__(self) -> None:
        for name in SECRET_FIELDS:  # never a plain str: repr, logs and dumps show "**********"
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                object.__setattr__(self, name, SecretStr(str(value)))

    @property
    def content_root(self) -> str:
        return content_root(self.state_dir)

    def to_json(self) -> str:
        """For starting a worker subprocess: `python -m pinclip.worker CONFIG.json`. Holds the
        secrets in clear: write it only with `write_private` (0600) and delete it after use."""
        values = {
            **vars(self),
            "topics": vars(self.topics),
            "fetch": self.fetch.to_dict(),
            "state_dir": str(self.state_dir),
        }
        for name in SECRET_FIELDS:
            values[name] = getattr(self, name).get_secret_value()
        return json.dumps(values, indent=2)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        values = json.loads(text)
        values["topics"] = Topics(**values["topics"])
        values["fetch"] = FetchPolicy.from_dict(values.get("fetch", {}))
        values["state_dir"] = Path(values["state_dir"])
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: WorkerSettings, **overrides: Any) -> WorkerConfig:
        """Build from `pinclip.settings.Settings` (passed in, not imported: no env reads here)."""
        values: dict[str, Any] = {
            "kafka_bootstrap": settings.kafka_bootstrap,
            "topics": Topics(
                settings.topic_created,
                settings.topic_repinned,
                settings.topic_model_updates,
                settings.topic_embedded,
                settings.topic_dlq,
                settings.topic_reembed,
            ),
            "consumer_group": settings.consumer_group,
            "topic_partitions": settings.topic_partitions,
            "topic_replication": settings.topic_replication,
            "session_timeout_s": settings.kafka_session_timeout_s,
            "neo4j_uri": settings.neo4j_uri,
            "neo4j_user": settings.neo4j_user,
            "neo4j_password": settings.neo4j_password,
            "neo4j_database": settings.neo4j_database,
            "milvus_uri": settings.milvus_uri,
            "milvus_token": settings.milvus_token,
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
            "fetch": FetchPolicy.from_settings(settings),
            "state_dir": Path(settings.state_dir),
            "metrics_port": settings.metrics_port,
            "progress_interval_s": settings.progress_interval_s,
            "metrics_host": settings.metrics_host,
        }
        values.update(overrides)
        return cls(**values)


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner can read (0600 from the first byte: created with that mode,
    never chmod-ed after the content is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def without_userinfo(url: str) -> str:
    """`http://user:secret@host:19530` → `http://host:19530`, for logs (a URI may carry a
    password even though the token has its own setting)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://{authority.rsplit('@', 1)[1]}{slash}{path}"
