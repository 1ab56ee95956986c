"""The query API on real services: Milvus (lite and the server), the shared Neo4j, tiny exported
models. Status codes, problem+json bodies, hydrated hits, consistency, one version per query
across a hot swap, images with caching headers, readiness and metrics."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_world import World, build_world, destroy_world, render
from PIL import Image

from pinclip.api import ApiConfig

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["lite", "server"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    neo4j_settings: Any,
    export_tiny_model: Any,
) -> Iterator[World]:
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


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
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


LITE_ONLY = pytest.mark.parametrize("world", ["lite"], indirect=True)


async def encode_text(world: World, version: int, text: str) -> np.ndarray:
    from encoder.service import EncoderService

    async with EncoderService.load(world.registry / f"v{version}", provider="cpu") as service:
        return np.asarray((await service.embed_text(text)).text)


# --- queries -----------------------------------------------------------------------------------


async def test_similar_hits_carry_title_image_boards_and_shared_boards(
    world: World, client: httpx.AsyncClient
) -> None:
    pin = world.pins[0]
    answer = (await client.get(f"/pins/{pin.pin_id}/similar", params={"k": 5})).json()
    assert answer["model_version"] == 1 and answer["consistency"] == "Bounded"
    hits = answer["results"]
    assert len(hits) == 5 and pin.pin_id not in {h["pin_id"] for h in hits}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    expected = world.brute_force(1, world.embeddings[1][pin.pin_id], 6)[1:]
    assert [h["pin_id"] for h in hits] == expected
    for hit in hits:
        spec = world.by_id(hit["pin_id"])
        assert hit["title"] == spec.title
        assert spec.board in hit["boards"]
        assert hit["image_url"].endswith(f"/pins/{spec.pin_id}/image")
        assert set(hit["shared_boards"]) == set(hit["boards"]) & {
            pin.board,
            f"{world.prefix}board-favourites",
        }


async def test_similar_filters_by_board_and_excludes_same_board(
    world: World, client: httpx.AsyncClient
) -> None:
    pin = world.pins[0]
    other_board = world.pins[1].board
    on_board = await client.get(
        f"/pins/{pin.pin_id}/similar", params={"k": 50, "board": other_board}
    )
    assert {h["pin_id"] for h in on_board.json()["results"]} == {
        p.pin_id for p in world.pins if p.board == other_board
    }
    excluded = await client.get(
        f"/pins/{pin.pin_id}/similar", params={"k": 50, "exclude_same_board": "true"}
    )
    results = excluded.json()["results"]
    assert results and all(not h["shared_boards"] for h in results)
    assert all(pin.board not in h["boards"] for h in results)


async def test_text_search_get_and_post_rank_like_brute_force(
    world: World, client: httpx.AsyncClient
) -> None:
    query = "red circle"
    expected = world.brute_force(1, await encode_text(world, 1, query), 4)
    by_get = (await client.get("/search/text", params={"q": query, "k": 4})).json()
    by_post = (await client.post("/search/text", json={"q": query, "k": 4})).json()
    assert [h["pin_id"] for h in by_get["results"]] == expected
    assert by_post["results"] == by_get["results"]
    assert by_get["query"] == query and by_get["model_version"] == 1
    assert all(h["title"] for h in by_get["results"])


async def test_image_search_raw_and_multipart_agree(
    world: World, client: httpx.AsyncClient
) -> None:
    image = render((220, 30, 40), "circle")
    raw = await client.post(
        "/search/image",
        content=image,
        params={"k": 3},
        headers={"Content-Type": "image/png"},
    )
    form = await client.post("/search/image", files={"image": ("q.png", image)}, params={"k": 3})
    assert raw.status_code == 200 and form.status_code == 200, form.text
    assert raw.json()["results"] == form.json()["results"]
    assert raw.json()["image_bytes"] == len(image)
    # The tiny models are random (they know no colours): the ranking must be brute force's.
    from encoder.service import EncoderService

    async with EncoderService.load(world.registry / "v1", provider="cpu") as service:
        query = np.asarray((await service.embed_image(image)).image)
    assert [h["pin_id"] for h in raw.json()["results"]] == world.brute_force(1, query, 3)


async def test_pin_detail_and_its_image_with_caching_headers(
    world: World, client: httpx.AsyncClient
) -> None:
    pin = world.pins[3]
    detail = (await client.get(f"/pins/{pin.pin_id}")).json()
    assert detail["title"] == pin.title and detail["embedded"] is True
    assert detail["consistency"] == "Strong" and detail["model_version"] == 1
    assert pin.board in detail["boards"] and detail["embedded_at"]
    image = await client.get(detail["image_url"].removeprefix("http://api"))
    assert image.status_code == 200 and image.content == pin.image
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    etag = image.headers["etag"]
    assert "max-age=" in image.headers["cache-control"]
    again = await client.get(f"/pins/{pin.pin_id}/image", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert_problem(await client.get(f"/pins/{world.prefix}nope"), 404, "pin-not-found")
    assert_problem(await client.get(f"/pins/{world.prefix}nope/image"), 404, "pin-not-found")


async def test_a_pin_written_a_moment_ago_is_found_by_similar_and_lookup(
    world: World, client: httpx.AsyncClient
) -> None:
    """Bounded search, but the query pin itself is re-read Strong when not visible yet."""
    from datetime import UTC, datetime

    from vector_store import PinVector

    fresh = f"{world.prefix}fresh"
    vector = world.embeddings[1][world.pins[5].pin_id] + 0.01
    world.vectors.upsert(1, [PinVector(fresh, vector, 1, datetime.now(UTC), ())])
    try:
        similar = await client.get(f"/pins/{fresh}/similar", params={"k": 3})
        assert similar.status_code == 200, similar.text
        lookup = (await client.get(f"/pins/{fresh}")).json()
        assert lookup["embedded"] is True and lookup["title"] is None
    finally:
        world.vectors.delete([fresh], 1)


async def test_hits_show_the_rows_boards_and_the_pin_page_the_current_ones(
    world: World, client: httpx.AsyncClient
) -> None:
    """A save after the pin was embedded: the pin page shows it (Neo4j, now), hits keep the
    boards recorded in the row — the ones `board=` filters on — so a page never contradicts
    its own filter."""
    from datetime import UTC, datetime

    from graph_store import Save

    pin, query = world.pins[4], world.pins[8]
    later = f"{world.prefix}board-later"
    world.graph.add_saves([Save(pin.pin_id, later, f"{world.prefix}user", datetime.now(UTC))])
    detail = (await client.get(f"/pins/{pin.pin_id}")).json()
    assert later in detail["boards"]
    answer = (await client.get(f"/pins/{query.pin_id}/similar", params={"k": 50})).json()
    [hit] = [h for h in answer["results"] if h["pin_id"] == pin.pin_id]
    assert hit["boards"] == sorted(pin.boards) and hit["title"] == pin.title
    on_later = await client.get(f"/pins/{query.pin_id}/similar", params={"board": later})
    assert on_later.json()["results"] == []


async def test_a_collection_made_before_rows_carried_content_still_answers(
    world: World,
) -> None:
    """Older code's collection (no title/image_uri fields): the stream still writes to it, and
    hits get their titles from one graph read (boards, as always, from the rows)."""
    from datetime import UTC, datetime

    from api_world import create_legacy_collection

    from vector_store import PinVector

    legacy = 3
    create_legacy_collection(
        world.milvus_uri, world.vectors.naming.collection(legacy), world.vectors.dim
    )
    rows = [
        PinVector(p.pin_id, world.embeddings[1][p.pin_id], legacy, datetime.now(UTC), p.boards)
        for p in world.pins
    ]
    world.vectors.upsert(legacy, [replace(r, title="ignored") for r in rows])
    world.vectors.flush(legacy)
    assert world.vectors.get([rows[0].pin_id], legacy)[0].title is None
    world.vectors.switch_alias(legacy)
    try:
        api = world.api(ApiConfig(preload_model=False, live_version_ttl_s=0))
        async for client in open_client(api):
            pin = world.pins[0]
            answer = (await client.get(f"/pins/{pin.pin_id}/similar", params={"k": 5})).json()
        assert answer["model_version"] == legacy
        expected = world.brute_force(1, world.embeddings[1][pin.pin_id], 6)[1:]
        assert [h["pin_id"] for h in answer["results"]] == expected
        for hit in answer["results"]:
            spec = world.by_id(hit["pin_id"])
            assert hit["title"] == spec.title and hit["boards"] == sorted(spec.boards)
    finally:
        world.vectors.switch_alias(1)
        world.vectors.drop_version(legacy, force=True)


# --- one version per query, across a hot swap ---------------------------------------------------


class SwitchingEncoders:
    """The real encoders; the first time a query asks for v1, the alias moves to v2 — the swap
    lands between the query's version resolution and its search."""

    def __init__(self, inner: Any, world: World) -> None:
        self.inner = inner
        self.world = world
        self.switched = False

    async def get(self, version: int) -> Any:
        encoder = await self.inner.get(version)
        if version == 1 and not self.switched:
            self.switched = True
            await asyncio.to_thread(self.world.vectors.switch_alias, 2)
        return encoder

    def is_loaded(self, version: int) -> bool:
        return bool(self.inner.is_loaded(version))

    async def close(self) -> None:
        await self.inner.close()


async def test_a_query_keeps_its_version_when_the_alias_moves_mid_query(world: World) -> None:
    from pinclip.api import VersionedEncoders

    inner = VersionedEncoders(str(world.registry), world.registry / "cache", "cpu")
    config = ApiConfig(preload_model=False, live_version_ttl_s=0)
    api = world.api(config, encoders=SwitchingEncoders(inner, world))
    query = "blue square"
    try:
        async for client in open_client(api):
            during = (await client.get("/search/text", params={"q": query, "k": 5})).json()
            after = (await client.get("/search/text", params={"q": query, "k": 5})).json()
            similar = (await client.get(f"/pins/{world.pins[2].pin_id}/similar")).json()
        assert during["model_version"] == 1
        v1 = world.brute_force(1, await encode_text(world, 1, query), 5)
        assert [h["pin_id"] for h in during["results"]] == v1
        assert after["model_version"] == 2
        v2 = world.brute_force(2, await encode_text(world, 2, query), 5)
        assert [h["pin_id"] for h in after["results"]] == v2
        own = world.embeddings[2][world.pins[2].pin_id]
        assert similar["model_version"] == 2
        assert [h["pin_id"] for h in similar["results"]] == world.brute_force(2, own, 11)[1:]
    finally:
        world.vectors.switch_alias(1)


# --- errors are problem+json -----------------------------------------------------------------


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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


@LITE_ONLY
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
