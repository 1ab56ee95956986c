"""The query API's searches on real services: Milvus (lite and the server), the shared Neo4j,
tiny exported models. Hits with their content and boards, filters, text and image search ranked
like brute force, pin pages and images, read-your-writes, collections from older code, one
version per query across a hot swap. The operational side is test_api_ops.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from api_client import assert_problem, default_client, open_client, served_world
from api_world import World, render

from pinclip.api import ApiConfig

pytestmark = pytest.mark.integration


world = pytest.fixture(scope="module", params=["lite", "server"], name="world")(served_world)
client = pytest.fixture(name="client")(default_client)


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
