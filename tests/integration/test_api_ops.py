"""The query API's operational side on real services (Milvus lite, the shared Neo4j, tiny
exported models): problem+json for bad requests and failing stores, limits, the concurrency cap,
auth, CORS, readiness and metrics, and the image endpoint's refusal to proxy local addresses."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_client import (
    PROBLEM,
    assert_problem,
    dead_graph_store,
    default_client,
    open_client,
    served_world,
)
from api_world import World, render
from PIL import Image

from pinclip.api import ApiConfig

pytestmark = pytest.mark.integration


world = pytest.fixture(scope="module", params=["lite"], name="world")(served_world)
client = pytest.fixture(name="client")(default_client)


# --- errors are problem+json -----------------------------------------------------------------


async def test_bad_requests_get_problem_details_with_stable_types(
    world: World, client: httpx.AsyncClient
) -> None:
    assert_problem(await client.get("/no/such/route"), 404, "not-found")
    assert_problem(await client.delete("/search/text"), 405, "method-not-allowed")
    invalid = assert_problem(
        await client.get("/search/text", params={"q": "x", "k": 0}), 422, "invalid-request"
    )
    assert invalid["errors"][0]["loc"] == ["query", "k"]
    assert_problem(await client.get("/search/text"), 422, "invalid-request")
    assert_problem(await client.post("/search/text", content=b"{"), 422, "invalid-request")
    rejected = assert_problem(
        await client.post("/search/image", content=b"not an image"), 422, "image-rejected"
    )
    assert rejected["reason"] == "unsupported_format"
    assert_problem(await client.post("/search/image", content=b""), 400, "empty-upload")
    unsupported = assert_problem(
        await client.post("/search/image", json={"image": "x"}), 415, "unsupported-media-type"
    )
    assert "multipart" in unsupported["detail"] and "--data-binary" in unsupported["detail"]
    assert_problem(
        await client.post("/search/image", files={"other": ("", b"")}), 400, "empty-upload"
    )


async def test_store_failures_are_problems_not_plain_500s(world: World, tmp_path: Path) -> None:
    from vector_store import VectorStore

    dead_graph = dead_graph_store()
    async for client in open_client(world.api(graph=dead_graph)):
        pin = world.pins[0].pin_id
        body = assert_problem(await client.get(f"/pins/{pin}"), 503, "graph-store-unavailable")
        assert "127.0.0.1:9" not in body["detail"]
        # Searches need no graph: their hits carry the pins' content from Milvus.
        assert (await client.get("/search/text", params={"q": "red"})).status_code == 200
        assert (await client.get(f"/pins/{pin}/similar")).status_code == 200
    empty = VectorStore(str(tmp_path / "empty.db"), alias="none", dim=world.vectors.dim)
    async for client in open_client(world.api(vectors=empty)):
        assert_problem(await client.get("/search/text", params={"q": "x"}), 503, "no-live-version")
    empty.close()  # a closed client: every Milvus call now fails like an unreachable server
    async for client in open_client(world.api(vectors=empty)):
        response = await client.get(f"/pins/{world.pins[0].pin_id}/similar")
        assert response.status_code in (502, 503)
        assert response.headers["content-type"].startswith(PROBLEM)


# --- limits, auth, CORS -----------------------------------------------------------------------


async def test_limits_on_k_text_and_upload_size(world: World) -> None:
    config = ApiConfig(max_k=7, max_text_chars=20, max_upload_bytes=2000)
    async for client in open_client(world.api(config)):
        assert (await client.get("/search/text", params={"q": "red", "k": 7})).status_code == 200
        assert_problem(
            await client.get("/search/text", params={"q": "red", "k": 8}), 422, "invalid-request"
        )
        assert_problem(
            await client.post("/search/text", json={"q": "r" * 21}), 422, "invalid-request"
        )
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise).save(out, format="PNG")
        big = out.getvalue()
        assert len(big) > 2000
        declared = await client.post(
            "/search/image", content=big, headers={"Content-Type": "image/png"}
        )
        assert assert_problem(declared, 413, "upload-too-large")["limit"] == 2000

        async def chunked(data: bytes) -> AsyncIterator[bytes]:  # no Content-Length
            for start in range(0, len(data), 500):
                yield data[start : start + 500]

        streamed = await client.post(
            "/search/image", content=chunked(big), headers={"Content-Type": "image/png"}
        )
        assert_problem(streamed, 413, "upload-too-large")
        too_big_part = await client.post("/search/image", files={"image": ("a.png", big)})
        assert_problem(too_big_part, 413, "upload-too-large")


async def test_concurrent_image_queries_beyond_the_cap_get_429(world: World) -> None:
    release = asyncio.Event()

    async def slow_upload() -> AsyncIterator[bytes]:
        yield render((220, 30, 40), "circle")[:10]
        await release.wait()

    async for client in open_client(world.api(ApiConfig(max_image_queries=1))):
        holder = asyncio.create_task(
            client.post(
                "/search/image", content=slow_upload(), headers={"Content-Type": "image/png"}
            )
        )
        for _ in range(200):  # until the first request holds the only slot
            await asyncio.sleep(0.01)
            metrics = (await client.get("/metrics")).text
            if "pinclip_api_image_queries_in_flight 1.0" in metrics:
                break
        busy = await client.post(
            "/search/image",
            content=render((1, 2, 3), "circle"),
            headers={"Content-Type": "image/png"},
        )
        body = assert_problem(busy, 429, "too-many-image-queries")
        assert busy.headers["retry-after"] == "1" and body["detail"]
        release.set()
        assert (await holder).status_code == 422  # the truncated image, once it was read


async def test_api_key_guards_everything_but_health_and_the_gallery_shell(world: World) -> None:
    config = ApiConfig(api_key="s3cret-key", api_key_header="X-Team-Key")
    async for client in open_client(world.api(config)):
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/")).status_code == 200
        for path in ("/search/text?q=red", "/ready", "/metrics", "/openapi.json", "/recent"):
            body = assert_problem(await client.get(path), 401, "unauthorized")
            assert "s3cret" not in str(body)
        wrong = await client.get("/search/text?q=red", headers={"X-Team-Key": "nope"})
        assert_problem(wrong, 401, "unauthorized")
        by_header = await client.get("/search/text?q=red", headers={"X-Team-Key": "s3cret-key"})
        bearer = await client.get(
            "/search/text?q=red", headers={"Authorization": "Bearer s3cret-key"}
        )
        assert by_header.status_code == 200 and bearer.status_code == 200
        image = await client.get(
            f"/pins/{world.pins[0].pin_id}/image", headers={"X-Team-Key": "s3cret-key"}
        )
        assert image.headers["cache-control"].startswith("private")


async def test_cors_is_off_unless_origins_are_configured(world: World) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
    }
    async for client in open_client(world.api()):
        response = await client.options("/search/text", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async for client in open_client(world.api(ApiConfig(cors_origins=("https://app.example",)))):
        response = await client.options("/search/text", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# --- operations -------------------------------------------------------------------------------


async def test_ready_reports_each_dependency_and_metrics_count_by_route(
    world: World, kafka_bootstrap: str
) -> None:
    from pinclip.api.recent import KafkaRecentFeed

    feed = KafkaRecentFeed(kafka_bootstrap, f"{world.tag}.embedded")
    async for client in open_client(world.api(recent=feed)):
        ready = await client.get("/ready")
        for _ in range(100):  # the live model loads in the background at start
            if ready.json()["checks"]["model"]["status"] == "ok":
                break
            await asyncio.sleep(0.1)
            ready = await client.get("/ready")
        body = ready.json()
        assert ready.status_code == 200 and body["status"] == "ready", body
        assert body["live_version"] == 1
        for name in ("milvus", "neo4j", "kafka", "model"):
            assert body["checks"][name]["status"] == "ok", (name, body)
        assert body["checks"]["milvus"]["latency_ms"] >= 0
        await client.get(f"/pins/{world.pins[0].pin_id}/similar")
        await client.get(f"/pins/{world.prefix}missing/similar")
        metrics = (await client.get("/metrics")).text
        assert (
            'pinclip_api_requests_total{method="GET",route="/pins/{pin_id:path}/similar",'
            'status="200"} 1.0' in metrics
        )
        assert 'route="/pins/{pin_id:path}/similar",status="404"} 1.0' in metrics
        assert 'pinclip_api_search_seconds_count{consistency="Bounded",query="similar"}' in metrics
        assert ready.headers["x-request-id"]
    dead_graph = dead_graph_store()
    dead_feed = KafkaRecentFeed("127.0.0.1:9", "none")
    async for client in open_client(world.api(graph=dead_graph, recent=dead_feed)):
        down = await client.get("/ready")
        assert down.status_code == 503
        checks = down.json()["checks"]
        assert checks["neo4j"]["status"] == "down" and checks["kafka"]["status"] == "down"
        assert checks["kafka"]["required"] is False
    assert (await _health_of(world)) == {"status": "ok"}


async def _health_of(world: World) -> Any:
    async for client in open_client(world.api()):
        return (await client.get("/health")).json()
    return None


async def test_the_image_endpoint_is_no_proxy_to_loopback_or_local_files(world: World) -> None:
    """Stored URIs are read through the fetch policy: a pin whose image points at a loopback
    server or at a file outside the content roots gets a coarse 502, and the server sees no
    request."""
    import http.server
    import threading

    from graph_store import PinNode

    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(world.pins[0].image)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    loopback = f"{world.prefix}loopback"
    local = f"{world.prefix}local-file"
    world.graph.upsert_pins(
        [
            PinNode(loopback, "l", "", f"http://127.0.0.1:{server.server_port}/secret.png"),
            PinNode(local, "f", "", "file:///etc/hostname"),
        ]
    )
    try:
        async for client in open_client(world.api()):
            for pin_id in (loopback, local):
                body = assert_problem(
                    await client.get(f"/pins/{pin_id}/image"), 502, "image-unavailable"
                )
                assert str(server.server_port) not in body["detail"]
                assert "hostname" not in body["detail"]
    finally:
        server.shutdown()
    assert hits == []
