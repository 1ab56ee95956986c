"""Query encoders by model version, loaded from the registry on first use.

A query is embedded by the encoder of the version it resolved (never "whatever is loaded"), so
a hot swap cannot pair a v1 query vector with the v2 collection. Loading one version does not
block queries on another (one load task per version, not one lock for all). Only the two newest
loaded versions are kept; an older one is closed after a grace period so its in-flight queries
finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from encoder.registry import local_model_dir, version_uri

log = structlog.get_logger(__name__)


def _query_service(provider: str, model_dir: Path) -> Any:
    from pinclip.factory import Factory, StoreConfig

    return Factory(StoreConfig(onnx_provider=provider)).encoder_service(
        model_dir, max_batch=16, max_delay_ms=2.0
    )


class ModelUnavailable(Exception):
    """The version's model could not be loaded (missing from the registry, corrupt, …)."""


class VersionedEncoders:
    def __init__(
        self,
        registry_url: str,
        cache_dir: Path,
        provider: str = "auto",
        *,
        keep_versions: int = 2,
        retire_after_s: float = 30.0,
        open_service: Callable[[Path], Any] | None = None,
    ) -> None:
        """`open_service(model_dir)` builds one version's encoder service; by default the
        factory's micro-batched EncoderService, sized for queries (small batches, 2 ms wait)."""
        self.registry_url = registry_url
        self._open = open_service or functools.partial(_query_service, provider)
        self.cache_dir = cache_dir
        self.provider = provider
        self.keep_versions = keep_versions
        self.retire_after_s = retire_after_s
        self._services: dict[int, Any] = {}
        self._loading: dict[int, asyncio.Task[Any]] = {}
        self._retiring: dict[asyncio.Task[None], Any] = {}

    def is_loaded(self, version: int) -> bool:
        return version in self._services

    async def get(self, version: int) -> Any:
        service = self._services.get(version)
        if service is not None:
            return service
        task = self._loading.get(version)
        if task is None:
            task = asyncio.create_task(self._load(version))
            self._loading[version] = task
        try:
            return await asyncio.shield(task)
        except ModelUnavailable:
            self._loading.pop(version, None)  # a later query may try again
            raise

    async def _load(self, version: int) -> Any:
        try:
            directory = await asyncio.to_thread(
                local_model_dir, version_uri(self.registry_url, version), self.cache_dir
            )
            service = await asyncio.to_thread(self._open, directory)
        except Exception as exc:
            log.warning("api_model_load_failed", version=version, error=str(exc))
            raise ModelUnavailable(f"model v{version}: {type(exc).__name__}: {exc}") from exc
        self._services[version] = service
        self._loading.pop(version, None)
        log.info("api_model_loaded", version=version)
        self._retire_old()
        return service

    def _retire_old(self) -> None:
        for version in sorted(self._services)[: -self.keep_versions]:
            service = self._services.pop(version)
            task = asyncio.create_task(self._close_later(version, service))
            self._retiring[task] = service
            task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _close_later(self, version: int, service: Any) -> None:
        await asyncio.sleep(self.retire_after_s)
        await service.close()
        log.info("api_model_unloaded", version=version)

    async def close(self) -> None:
        retiring = list(self._retiring.values())
        for task in [*self._loading.values(), *self._retiring]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for service in [*self._services.values(), *retiring]:
            with contextlib.suppress(Exception):  # closed by its own retirement already
                await service.close()
        self._services.clear()
        self._loading.clear()
