"""How tests find a real service: environment variables (e.g. from `pinclip services env`) →
Testcontainers when a Docker engine answers → a skip that names what is missing.

Kept out of conftest.py so the resolution order and the CI skip policy are plain functions.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pinclip.services.milvus import TEST_URI_VAR
from pinclip.services.testcontainers_kafka import ApacheKafkaContainer

KAFKA_IMAGE_VAR = "PINCLIP_TEST_KAFKA_IMAGE"
NEO4J_IMAGE_VAR = "PINCLIP_TEST_NEO4J_IMAGE"
MILVUS_IMAGE_VAR = "PINCLIP_TEST_MILVUS_IMAGE"
DEFAULT_IMAGES = {
    # the same image as compose/dev.yml: one Kafka image serves both (ApacheKafkaContainer)
    KAFKA_IMAGE_VAR: "apache/kafka:3.9.1",
    NEO4J_IMAGE_VAR: "neo4j:5.26-community",
    MILVUS_IMAGE_VAR: "milvusdb/milvus:v2.5.4",
}
HOW_TO = (
    'run `pinclip services up && eval "$(pinclip services env)"` or provide a Docker engine '
    "for Testcontainers"
)
# Markers whose skips are expected even in CI: the hardware or engine is genuinely absent.
ALLOWED_SKIP_MARKERS = frozenset({"docker", "gpu"})
# Set by `pinclip engine env`: an engine is provided, so a skipped `docker` test is a failure.
REQUIRE_DOCKER_VAR = "PINCLIP_REQUIRE_DOCKER"


class Unavailable(Exception):
    """The service cannot be provided here; the message says what is missing."""


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str
    user: str
    password: str
    database: str = "neo4j"


@dataclass
class Provided:
    """A resolved service value and how to release it (a container to stop, or nothing)."""

    value: Any
    source: str
    close: Callable[[], None] = field(default=lambda: None)


def image(var: str, env: Mapping[str, str] = os.environ) -> str:
    return env.get(var) or DEFAULT_IMAGES[var]


def docker_host() -> str | None:
    """The engine Testcontainers will use, found the way it finds it: `tc.host` in
    ~/.testcontainers.properties, then DOCKER_HOST, then the current Docker context (Colima,
    rootless Docker, a remote host); None means docker-py's default socket."""
    from testcontainers.core.docker_client import get_docker_host

    return get_docker_host()


def docker_available() -> bool:
    try:
        import docker

        host = docker_host()
        client = (
            docker.DockerClient(base_url=host, timeout=3) if host else docker.from_env(timeout=3)
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False


def new_password() -> str:
    """32 hex characters: long enough for Neo4j's 8-character minimum, and never starting
    with "-" (which neo4j-admin would read as an option)."""
    return secrets.token_hex(16)


def _from_container(container: Any, value: Callable[[Any], Any]) -> Provided:
    """Start `container`; if the start (or its wait for readiness) fails, remove it before
    re-raising: with Ryuk disabled (podman) nothing else would."""
    try:
        container.start()
        resolved = value(container)
    except BaseException:
        _remove(container)
        raise
    return Provided(resolved, f"testcontainers:{container.image}", container.stop)


def _remove(container: Any, attempts: int = 10) -> None:
    """Force-remove, retrying: an engine can refuse while the container is still exiting
    (seen with podman when the process ended as the removal came in)."""
    for attempt in range(attempts):
        try:
            container.stop()
            return
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                return
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def kafka_bootstrap(
    env: Mapping[str, str] = os.environ,
    docker: Callable[[], bool] | None = None,
    force_container: bool = False,
) -> Provided:
    """`force_container`: ignore PINCLIP_KAFKA_BOOTSTRAP (the image override still applies)."""
    if env.get("PINCLIP_KAFKA_BOOTSTRAP") and not force_container:
        return Provided(env["PINCLIP_KAFKA_BOOTSTRAP"], "env")
    if (docker or docker_available)():
        return _from_container(
            ApacheKafkaContainer(image(KAFKA_IMAGE_VAR, env)), lambda c: c.get_bootstrap_server()
        )
    raise Unavailable(f"no Kafka: PINCLIP_KAFKA_BOOTSTRAP is unset and no Docker engine; {HOW_TO}")


def neo4j_settings(
    env: Mapping[str, str] = os.environ,
    docker: Callable[[], bool] | None = None,
    force_container: bool = False,
) -> Provided:
    if env.get("PINCLIP_NEO4J_URI") and not force_container:
        return Provided(
            Neo4jSettings(
                uri=env["PINCLIP_NEO4J_URI"],
                user=env.get("PINCLIP_NEO4J_USER", "neo4j"),
                password=env.get("PINCLIP_NEO4J_PASSWORD", ""),
                database=env.get("PINCLIP_NEO4J_DATABASE", "neo4j"),
            ),
            "env",
        )
    if (docker or docker_available)():
        from testcontainers.neo4j import Neo4jContainer

        password = new_password()  # a throwaway container: a fresh password each run
        return _from_container(
            Neo4jContainer(image(NEO4J_IMAGE_VAR, env), password=password),
            lambda c: Neo4jSettings(c.get_connection_url(), "neo4j", password),
        )
    raise Unavailable(f"no Neo4j: PINCLIP_NEO4J_URI is unset and no Docker engine; {HOW_TO}")


def milvus_server_uri(
    env: Mapping[str, str] = os.environ,
    docker: Callable[[], bool] | None = None,
    force_container: bool = False,
) -> Provided:
    if env.get(TEST_URI_VAR) and not force_container:
        return Provided(env[TEST_URI_VAR], "env")
    if (docker or docker_available)():
        from testcontainers.milvus import MilvusContainer

        return _from_container(
            MilvusContainer(image(MILVUS_IMAGE_VAR, env)), lambda c: c.get_connection_url()
        )
    raise Unavailable(f"no Milvus server: {TEST_URI_VAR} is unset and no Docker engine; {HOW_TO}")


@dataclass(frozen=True)
class SkippedTest:
    nodeid: str
    markers: frozenset[str]
    reason: str


def forbidden_skips(
    skipped: Iterable[SkippedTest], env: Mapping[str, str] = os.environ
) -> list[SkippedTest]:
    """In CI the services are there, so a skip means something broke — unless the test needs
    hardware or an engine CI does not have (markers `docker`, `gpu`). Where an engine is
    provided (PINCLIP_REQUIRE_DOCKER=1, set by `pinclip engine env`) `docker` skips fail too."""
    allowed = ALLOWED_SKIP_MARKERS
    if env.get(REQUIRE_DOCKER_VAR, "").lower() in {"1", "true", "yes"}:
        allowed = allowed - {"docker"}
    return [s for s in skipped if not (s.markers & allowed)]
