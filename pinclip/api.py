"""HTTP query API: similar pins by pin id, by text, by image — always through the alias.

Each query resolves the live version once and uses that version's encoder *and* collection, so a
query vector from model N never searches collection N+1 (no mixed versions across a swap).
Images are uploaded as the raw request body (`curl --data-binary @x.jpg -H 'Content-Type:
image/jpeg'`): no multipart dependency on the serving path.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request

from streams.models import local_model_dir, version_uri


@dataclass(frozen=True)
class Hit:
    pin_id: str
    score: float


class VersionedEncoders:
    """Encoders by model version, loaded from the registry on first use."""

    def __init__(self, registry_url: str, cache_dir: Path, provider: str = "auto") -> None:
        self.registry_url = registry_url
        self.cache_dir = cache_dir
        self.provider = provider
        self._services: dict[int, Any] = {}
        self._lock = asyncio.Lock()

    async def get(self, version: int) -> Any:
        async with self._lock:
            if version not in self._services:
                from encoder.service import EncoderService

                directory = local_model_dir(version_uri(self.registry_url, version), self.cache_dir)
                self._services[version] = await asyncio.to_thread(
                    functools.partial(
                        EncoderService.load,
                        directory,
                        max_batch=16,
                        max_delay_ms=2.0,
                        provider=self.provider,
                    )
                )
            return self._services[version]

    async def close(self) -> None:
        for service in self._services.values():
            await service.close()
        self._services.clear()


def create_api(vector_store: Any, encoders: VersionedEncoders) -> FastAPI:
    """The FastAPI app; `vector_store` is a vector_store.VectorStore."""
    from vector_store import NoLiveVersion, PinNotFound

    api = FastAPI(title="PinCLIP Stream query API")

    async def live_version() -> int:
        version = await asyncio.to_thread(vector_store.live_version)
        if version is None:
            raise HTTPException(503, "no live model version yet (alias missing)")
        return int(version)

    def answer(version: int, hits: list[Any], **extra: Any) -> dict[str, Any]:
        results = [asdict(Hit(h.pin_id, round(float(h.score), 6))) for h in hits]
        return {"model_version": version, **extra, "results": results}

    @api.get("/health")
    async def health() -> dict[str, Any]:
        try:
            version = await asyncio.to_thread(vector_store.live_version)
        except Exception as exc:  # the store itself is down
            raise HTTPException(503, f"vector store unavailable: {exc}") from exc
        return {"status": "ok", "live_version": version, "backend": vector_store.backend}

    @api.get("/pins/{pin_id}/similar")
    async def similar_to_pin(pin_id: str, k: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        version = await live_version()
        try:
            hits = await asyncio.to_thread(vector_store.search_by_pin, pin_id, k, None, version)
        except PinNotFound as exc:
            raise HTTPException(404, f"pin {pin_id!r} not found in v{version}") from exc
        except NoLiveVersion as exc:
            raise HTTPException(503, str(exc)) from exc
        return answer(version, hits, pin_id=pin_id)

    @api.get("/search/text")
    async def search_text(
        q: str = Query(..., min_length=1, max_length=1000), k: int = Query(10, ge=1, le=100)
    ) -> dict[str, Any]:
        version = await live_version()
        embedding = await (await encoders.get(version)).embed_text(q)
        hits = await asyncio.to_thread(vector_store.search, embedding.text, k, None, version)
        return answer(version, hits, query=q)

    @api.post("/search/image")
    async def search_image(request: Request, k: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        from encoder.preprocess import ImageRejected

        body = await request.body()
        if not body:
            raise HTTPException(400, "send the image bytes as the request body")
        version = await live_version()
        try:
            embedding = await (await encoders.get(version)).embed_image(body)
        except ImageRejected as exc:
            raise HTTPException(422, f"image rejected: {exc.reason}") from exc
        hits = await asyncio.to_thread(vector_store.search, embedding.image, k, None, version)
        return answer(version, hits)

    @api.on_event("shutdown")
    async def close() -> None:
        await encoders.close()

    return api


def create_api_from_settings(settings: Any) -> FastAPI:
    """Wire the API to the configured Milvus and model registry."""
    from streams.models import manifest_dim, registry_versions
    from vector_store import VectorStore

    versions = registry_versions(settings.registry_url)
    dim = manifest_dim(version_uri(settings.registry_url, versions[-1])) if versions else 256
    store = VectorStore(
        settings.milvus_uri,
        settings.milvus_token.get_secret_value(),
        settings.milvus_alias,
        dim,
        settings.milvus_consistency,
        prefix=settings.milvus_collection_prefix,
    )
    encoders = VersionedEncoders(
        settings.registry_url, Path(settings.state_dir) / "model-cache", settings.onnx_provider
    )
    return create_api(store, encoders)
