"""What the API test modules share: the served world per Milvus kind, an in-process client with
the app's lifespan, the problem+json assertion and a graph store with no Neo4j behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from api_world import World, build_world, destroy_world

PROBLEM = "application/problem+json"


def served_world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    neo4j_settings: Any,
    export_tiny_model: Any,
) -> Iterator[World]:
    """Body of a module-scoped `world` fixture parametrized by "lite" or "server"."""
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "lite":
        uri = str(root / "milvus.db")
    else:
        uri = str(request.getfixturevalue("milvus_server_uri"))
    built = build_world(root, uri, neo4j_settings, export_tiny_model)
    try:
        yield built
    finally:
        destroy_world(built)


async def open_client(api: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def default_client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """Body of the `client` fixture: the world's API with its default configuration."""
    async for c in open_client(world.api()):
        yield c


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:pinclip:problem:{slug}"
    assert body["status"] == status and body["title"]
    return body


def dead_graph_store() -> Any:
    """A real driver pointed at a port where no Neo4j listens (an outage, fast)."""
    from graph_store import GraphStore, RetryPolicy

    return GraphStore(
        "bolt://127.0.0.1:9",
        retry=RetryPolicy(attempts=1),
        transaction_retry_s=0.2,
        connection_timeout_s=0.5,
    )
