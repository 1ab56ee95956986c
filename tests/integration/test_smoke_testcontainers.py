"""The Testcontainers path of the fixtures, forced (the PINCLIP_* service variables are ignored,
the PINCLIP_TEST_*_IMAGE overrides are not): on a machine with a Docker engine every service comes
up in a container and answers a real request. Without an engine these tests skip — allowed in CI
only where no engine is provided (`pinclip engine env` sets PINCLIP_REQUIRE_DOCKER=1)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from pinclip.services import fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


def _in_container(resolve: Callable[..., fixtures.Provided]) -> fixtures.Provided:
    if not fixtures.docker_available():
        pytest.skip("no Docker engine answers (DOCKER_HOST or the default socket)")
    provided = resolve(force_container=True)
    assert provided.source.startswith("testcontainers:")
    return provided


def test_kafka_container_answers_metadata() -> None:
    from kafka import KafkaConsumer, KafkaProducer

    provided = _in_container(fixtures.kafka_bootstrap)
    assert provided.source == f"testcontainers:{fixtures.image(fixtures.KAFKA_IMAGE_VAR)}"
    try:
        producer = KafkaProducer(bootstrap_servers=provided.value)
        producer.send("tc-smoke", b"hello").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            "tc-smoke",
            bootstrap_servers=provided.value,
            auto_offset_reset="earliest",
            consumer_timeout_ms=30_000,
        )
        assert [m.value for m in consumer][:1] == [b"hello"]
        consumer.close()
    finally:
        provided.close()


def test_neo4j_container_answers_bolt() -> None:
    from neo4j import GraphDatabase

    provided = _in_container(fixtures.neo4j_settings)
    assert provided.source == f"testcontainers:{fixtures.image(fixtures.NEO4J_IMAGE_VAR)}"
    settings = provided.value
    assert settings.password, "auth stays on, with a generated password"
    try:
        with GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password)) as drv:
            records, _, _ = drv.execute_query("RETURN 1 AS ok")
            assert records[0]["ok"] == 1
    finally:
        provided.close()


def test_milvus_container_lists_collections() -> None:
    from pymilvus import MilvusClient

    provided = _in_container(fixtures.milvus_server_uri)
    assert provided.source == f"testcontainers:{fixtures.image(fixtures.MILVUS_IMAGE_VAR)}"
    try:
        client = MilvusClient(uri=provided.value)
        assert isinstance(client.list_collections(), list)
        client.close()
    finally:
        provided.close()


def test_a_failed_start_removes_its_container() -> None:
    """With Ryuk disabled nothing else reaps it: a container whose start fails is removed."""
    import docker
    from testcontainers.core.container import DockerContainer

    if not fixtures.docker_available():
        pytest.skip("no Docker engine answers (DOCKER_HOST or the default socket)")
    image = fixtures.image(fixtures.KAFKA_IMAGE_VAR)
    container = DockerContainer(image).with_command("sh -c 'exit 3'")
    marker = f"pinclip-failed-start-{secrets.token_hex(4)}"
    container.with_kwargs(labels={"pinclip.test": marker})

    def never_ready(c: DockerContainer) -> str:
        raise TimeoutError("not ready")

    with pytest.raises(TimeoutError):
        fixtures._from_container(container, never_ready)
    host = fixtures.docker_host()
    client = docker.DockerClient(base_url=host) if host else docker.from_env()
    try:
        left = client.containers.list(all=True, filters={"label": f"pinclip.test={marker}"})
        assert left == []
    finally:
        client.close()
