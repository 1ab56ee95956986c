"""The Testcontainers path of the fixtures, forced (environment ignored): on a machine with a
Docker engine every service comes up in a container and answers a real request. Without an
engine these tests skip — allowed in CI by the `docker` marker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinclip.services import fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


def _in_container(resolve: Callable[..., fixtures.Provided]) -> fixtures.Provided:
    if not fixtures.docker_available():
        pytest.skip("no Docker engine answers (DOCKER_HOST or the default socket)")
    provided = resolve({}, docker=lambda: True)  # {}: ignore PINCLIP_* so containers start
    assert provided.source.startswith("testcontainers:")
    return provided


def test_kafka_container_answers_metadata() -> None:
    from kafka import KafkaConsumer

    provided = _in_container(fixtures.kafka_bootstrap)
    try:
        consumer = KafkaConsumer(bootstrap_servers=provided.value)
        assert isinstance(consumer.topics(), set)
        consumer.close()
    finally:
        provided.close()


def test_neo4j_container_answers_bolt() -> None:
    from neo4j import GraphDatabase

    provided = _in_container(fixtures.neo4j_settings)
    settings = provided.value
    try:
        with GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password)) as drv:
            records, _, _ = drv.execute_query("RETURN 1 AS ok")
            assert records[0]["ok"] == 1
    finally:
        provided.close()


def test_milvus_container_lists_collections() -> None:
    from pymilvus import MilvusClient

    provided = _in_container(fixtures.milvus_server_uri)
    try:
        client = MilvusClient(uri=provided.value)
        assert isinstance(client.list_collections(), list)
        client.close()
    finally:
        provided.close()
