"""The query API on a real Milvus (lite and server) with a tiny exported model: similar pins by
id, by text and by an uploaded image, all answered from the live version."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pinclip.api import VersionedEncoders, create_api
from vector_store import PinVector, VectorStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from encoder.config import PinClipConfig
    from encoder.export import export_model
    from encoder.model import PinClipModel

    root = tmp_path_factory.mktemp("api-registry")
    torch.manual_seed(0)
    export_model(PinClipModel(PinClipConfig.tiny()), root / "v1", 1)
    return root


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def store(milvus_uri: str) -> Iterator[VectorStore]:
    tag = "api" + uuid.uuid4().hex[:8]
    vs = VectorStore(milvus_uri, alias=f"{tag}_pins", dim=32, prefix=f"{tag}_v")
    try:
        yield vs
    finally:
        vs.purge()
        vs.close()


async def test_similar_by_pin_text_and_image_through_the_live_version(
    store: VectorStore, registry: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from encoder.service import EncoderService, PinContent

    encoders = VersionedEncoders(str(registry), tmp_path / "cache", "cpu")
    api = create_api(store, encoders)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/pins/x/similar")).status_code == 503  # no alias yet

        service = EncoderService.load(registry / "v1", provider="cpu")
        colours = [(250, 10, 10), (240, 20, 20), (10, 10, 250), (20, 240, 20)]
        rows = []
        for i, colour in enumerate(colours):
            emb = await service.embed(PinContent(f"pin {i}", "", jpeg(colour)))
            rows.append(PinVector(f"p{i}", emb.pin, 1, datetime.now(UTC), ("b",)))
        await service.close()
        store.ensure_version(1)
        store.upsert(1, rows)
        store.switch_alias(1)

        health = (await client.get("/health")).json()
        assert health["status"] == "ok" and health["live_version"] == 1

        similar = (await client.get("/pins/p0/similar", params={"k": 3})).json()
        assert similar["model_version"] == 1
        assert [r["pin_id"] for r in similar["results"]] != []
        assert "p0" not in {r["pin_id"] for r in similar["results"]}
        assert len(similar["results"]) == 3

        text = (await client.get("/search/text", params={"q": "pin 1", "k": 4})).json()
        assert {r["pin_id"] for r in text["results"]} == {"p0", "p1", "p2", "p3"}
        scores = [r["score"] for r in text["results"]]
        assert scores == sorted(scores, reverse=True)

        image = await client.post(
            "/search/image",
            content=jpeg((250, 10, 10)),
            params={"k": 2},
            headers={"Content-Type": "image/jpeg"},
        )
        assert image.status_code == 200 and len(image.json()["results"]) == 2

        rejected = await client.post("/search/image", content=b"not an image")
        assert rejected.status_code == 422 and "image rejected" in rejected.json()["detail"]
        assert (await client.get("/pins/nope/similar")).status_code == 404
        assert (await client.post("/search/image", content=b"")).status_code == 400
    await encoders.close()
