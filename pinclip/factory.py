"""The one place that builds the stores and the encoders from settings.

The worker, the backfill, the query API, the demo and the benchmarks all get their Milvus
`VectorStore`, Neo4j `GraphStore` and ONNX encoders here, so a setting (a URI, a token, the
collection prefix, the consistency level, the onnxruntime provider, the batching) means the
same thing everywhere and is read in one place:

    factory = Factory.from_settings(get_settings())        # PINCLIP_* settings
    factory = Factory.from_worker_config(config)           # a worker's explicit config
    vectors = factory.vector_store()                       # dim from the registry's manifest
    graph = factory.graph_store()
    service = factory.encoder_service(model_dir)           # micro-batched, hot-swappable
    encoder = factory.onnx_encoder(model_dir)              # plain onnxruntime sessions

`Factory` satisfies `streams.ports.StoreFactory`: the worker is handed one and builds its stores
and encoders through it once it knows the model's dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from encoder.registry import RegistryReader
from streams import defaults, stages

if TYPE_CHECKING:
    from encoder.runtime import OnnxEncoder
    from encoder.service import EncoderService
    from graph_store import GraphStore
    from pinclip.registry import ModelRegistry
    from pinclip.settings import Settings
    from streams.config import WorkerConfig
    from vector_store import VectorStore

DEFAULT_DIM = 256  # only for a registry with no model yet (an API started before any training)


def _reveal(value: Any) -> str:
    """Secrets arrive as pydantic SecretStr (settings) or plain str (older configs)."""
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal()) if callable(reveal) else str(value or "")


@dataclass(frozen=True)
class StoreConfig:
    """What it takes to reach the stores and load a model; built from settings or a config."""

    milvus_uri: str = defaults.MILVUS_URI
    milvus_token: str = ""
    milvus_alias: str = defaults.MILVUS_ALIAS
    milvus_prefix: str = defaults.MILVUS_PREFIX
    milvus_consistency: str = defaults.MILVUS_CONSISTENCY
    neo4j_uri: str = defaults.NEO4J_URI
    neo4j_user: str = defaults.NEO4J_USER
    neo4j_password: str = ""
    neo4j_database: str = defaults.NEO4J_DATABASE
    registry_url: str = defaults.REGISTRY_URL
    onnx_provider: str = defaults.ONNX_PROVIDER
    onnx_threads: int = defaults.ONNX_THREADS
    max_batch: int = 32
    max_delay_ms: float = 10.0

    def __repr__(self) -> str:  # never print the secrets
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("milvus_token", "neo4j_password"):
            shown[secret] = "***" if shown[secret] else ""
        return f"StoreConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def of(cls, source: Any, **overrides: Any) -> StoreConfig:
        """Take every field `source` (Settings, WorkerConfig, any object) has; secrets revealed."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if hasattr(source, f.name):
                value = getattr(source, f.name)
                secret = f.name in ("milvus_token", "neo4j_password")
                values[f.name] = _reveal(value) if secret else value
        values.update(overrides)
        return cls(**values)


class Factory:
    """Builds stores and encoders from one `StoreConfig` (see the module docstring)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Factory:
        return cls(StoreConfig.of(settings, **overrides))

    @classmethod
    def from_worker_config(cls, config: WorkerConfig) -> Factory:
        return cls(StoreConfig.of(config))

    def with_overrides(self, **overrides: Any) -> Factory:
        return Factory(replace(self.config, **overrides))

    # --- stores ---------------------------------------------------------------------------

    def registry(self) -> ModelRegistry:
        """The model registry, to register versions in and announce them (the write side)."""
        from pinclip.registry import ModelRegistry

        return ModelRegistry(self.config.registry_url)

    def registry_reader(self) -> RegistryReader:
        """The model registry, read only (no write method exists on it)."""
        return RegistryReader(self.config.registry_url)

    def registry_dim(self, version: int | None = None) -> int:
        """Embedding dimension of `version` (default: the newest in the registry)."""
        reader = self.registry_reader()
        version = version if version is not None else reader.latest()
        return DEFAULT_DIM if version is None else reader.dim(version)

    def vector_store(self, dim: int | None = None, **options: Any) -> VectorStore:
        """Milvus (lite for a path, a server for http://...); `options` go to VectorStore."""
        from vector_store import VectorStore

        c = self.config
        with stages.thread_named("milvus"):  # grpc's threads inherit the name
            return VectorStore(
                c.milvus_uri,
                c.milvus_token,
                c.milvus_alias,
                dim if dim is not None else self.registry_dim(),
                c.milvus_consistency,
                prefix=c.milvus_prefix,
                **options,
            )

    def graph_store(self, **options: Any) -> GraphStore:
        """Neo4j; `options` go to GraphStore (batch_size, board_cap, retry …)."""
        from graph_store import GraphStore

        c = self.config
        return GraphStore(c.neo4j_uri, c.neo4j_user, c.neo4j_password, c.neo4j_database, **options)

    # --- encoders -------------------------------------------------------------------------

    def model_dir(self, version: int, cache_dir: Path) -> Path:
        """A local directory holding registry version `version` (downloaded if remote)."""
        return self.registry_reader().local_dir(version, cache_dir)

    def onnx_encoder(
        self, model_dir: str | Path, intra_op_threads: int | None = None
    ) -> OnnxEncoder:
        """The plain onnxruntime sessions of one model directory (provider, threads from
        settings unless given)."""
        from encoder.runtime import OnnxEncoder

        threads = self.config.onnx_threads if intra_op_threads is None else intra_op_threads
        with stages.thread_named("onnxruntime"):  # its native pool inherits the name
            return OnnxEncoder.load(
                model_dir, provider=self.config.onnx_provider, intra_op_threads=threads
            )

    def encoder_service(self, model_dir: str | Path, **batching: Any) -> EncoderService:
        """A micro-batched EncoderService; `batching` overrides max_batch, max_delay_ms, …"""
        from encoder.service import EncoderService

        options: dict[str, Any] = {
            "max_batch": self.config.max_batch,
            "max_delay_ms": self.config.max_delay_ms,
            "provider": self.config.onnx_provider,
            "intra_op_threads": self.config.onnx_threads,
        }
        options.update(batching)
        with stages.thread_named("onnxruntime"):
            return EncoderService.load(model_dir, **options)
