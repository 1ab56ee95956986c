"""Where the local services live and which ports and versions they use.

Separate from the app's `Settings` on purpose: these knobs only matter to the developer machine
and CI that run the services themselves, never to a deployed worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pinclip.settings import get_settings


def default_cache_dir() -> Path:
    """Downloads are shared between runs and clones: honour $XDG_CACHE_HOME like other tools."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinclip"


class ServicesConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PINCLIP_SERVICES_", extra="ignore")

    host: str = Field("127.0.0.1", description="Loopback address every service binds.")
    kafka_port: int = Field(9092, description="Kafka PLAINTEXT listener.")
    kafka_controller_port: int = Field(9093, description="Kafka KRaft controller listener.")
    kafka_version: str = Field("3.9.1", description="org.apache.kafka:kafka_2.13 version.")
    kafka_heap: str = Field("512m", description="Kafka JVM max heap.")
    neo4j_bolt_port: int = Field(7687, description="Neo4j Bolt listener.")
    neo4j_version: str = Field("5.26.12", description="org.neo4j:neo4j version (5.26 LTS).")
    neo4j_heap: str = Field("768m", description="Neo4j JVM max heap.")
    neo4j_pagecache: str = Field("64m", description="Neo4j page cache size.")
    milvus_port: int = Field(19530, description="Real Milvus server (tests only) gRPC port.")
    enable_milvus: bool = Field(True, description="Also start the real Milvus server.")
    start_timeout_s: float = Field(180.0, description="Longest wait for one service to be ready.")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="Maven downloads.")
    state_dir: Path | None = Field(
        None, description="Pids, logs and data (default: <PINCLIP_STATE_DIR>/services)."
    )

    def resolved_state_dir(self) -> Path:
        base = self.state_dir or (get_settings().state_dir / "services")
        return base.resolve()
