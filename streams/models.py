"""Which model versions the worker serves: registry lookup, manifest check, load/unload.

The registry is a directory (any fsspec URL) of `v<N>/` model directories with `manifest.json`.
A ModelUpdate carries the manifest's sha256 so a worker never serves a half-copied or different
model under the announced version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fsspec
import structlog

from streams.events import ModelUpdate
from streams.pipeline import ModelPlan, ModelVersions, plan_model_update

log = structlog.get_logger(__name__)
_VERSION_DIR = re.compile(r"^v(\d+)$")


class ModelMismatch(Exception):
    """The model directory does not match the announced manifest hash."""


def version_uri(registry_url: str, version: int) -> str:
    return f"{registry_url.rstrip('/')}/v{version}"


def registry_versions(registry_url: str) -> list[int]:
    """Versions `v<N>` in the registry that have a manifest.json, ascending."""
    fs, root = fsspec.core.url_to_fs(registry_url)
    if not fs.exists(root):
        return []
    found = []
    for entry in fs.ls(root, detail=False):
        match = _VERSION_DIR.match(str(entry).rstrip("/").rsplit("/", 1)[-1])
        if match and fs.exists(f"{str(entry).rstrip('/')}/manifest.json"):
            found.append(int(match.group(1)))
    return sorted(found)


def manifest_sha256(model_uri: str) -> str:
    fs, root = fsspec.core.url_to_fs(model_uri)
    return hashlib.sha256(fs.cat_file(f"{root.rstrip('/')}/manifest.json")).hexdigest()


def manifest_dim(model_uri: str) -> int:
    """Embedding dimension from a model directory's manifest (sizes the Milvus collections)."""
    fs, root = fsspec.core.url_to_fs(model_uri)
    return int(json.loads(fs.cat_file(f"{root.rstrip('/')}/manifest.json"))["dim"])


def model_update_for(registry_url: str, version: int, stage: str) -> ModelUpdate:
    """The ModelUpdate announcing `version` of the registry (for the trainer / demo to produce)."""
    uri = version_uri(registry_url, version)
    return ModelUpdate.model_validate(
        {
            "version": version,
            "registry_uri": uri,
            "manifest_sha256": manifest_sha256(uri),
            "stage": stage,
        }
    )


def local_model_dir(model_uri: str, cache_dir: Path) -> Path:
    """A local directory with the model: the path itself if local, else a downloaded copy."""
    fs, root = fsspec.core.url_to_fs(model_uri)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return Path(root)
    target = cache_dir / Path(root.rstrip("/")).name
    if not (target / "manifest.json").exists():
        fs.get(root.rstrip("/") + "/", str(target), recursive=True)
    return target


Loader = Callable[[Path], Any]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class ModelSet:
    """The encoders the worker holds: the live one and, during a transition, the next one."""

    def __init__(self, loader: Loader, cache_dir: Path) -> None:
        self._loader = loader
        self._cache_dir = cache_dir
        self.state = ModelVersions()
        self._services: dict[int, Any] = {}
        self.on_change: list[Callable[[ModelVersions], Awaitable[None] | None]] = []

    def service(self, version: int) -> Any:
        return self._services[version]

    def targets(self) -> tuple[int, ...]:
        return self.state.write_targets()

    async def start(self, version: int, model_uri: str) -> None:
        self._services[version] = await self._load(model_uri)
        self.state = ModelVersions(live=version)
        log.info("model_started", version=version, uri=model_uri)

    async def apply(self, update: ModelUpdate) -> ModelPlan:
        """Load/unload per the dual-write rule; the new state is set only once loading worked."""
        plan = plan_model_update(self.state, update)
        if plan.ignored:
            log.info(
                "model_update_ignored", version=update.version, stage=update.stage, why=plan.ignored
            )
            return plan
        if plan.load is not None:
            actual = manifest_sha256(update.registry_uri)
            if actual != update.manifest_sha256:
                raise ModelMismatch(
                    f"v{update.version}: manifest sha256 {actual} "
                    f"!= announced {update.manifest_sha256}"
                )
            self._services[plan.load] = await self._load(update.registry_uri)
        self.state = plan.state
        for version in plan.unload:
            service = self._services.pop(version, None)
            await _close(service)
        log.info(
            "model_update_applied",
            version=update.version,
            stage=update.stage,
            live=plan.state.live,
            next=plan.state.next,
            unloaded=list(plan.unload),
        )
        for callback in self.on_change:
            await _maybe_await(callback(self.state))
        return plan

    async def _load(self, model_uri: str) -> Any:
        directory = local_model_dir(model_uri, self._cache_dir)
        return await _maybe_await(self._loader(directory))

    async def close(self) -> None:
        for service in self._services.values():
            await _close(service)
        self._services.clear()


async def _close(service: Any) -> None:
    for name in ("aclose", "close", "stop"):
        method = getattr(service, name, None)
        if method is not None:
            await _maybe_await(method())
            return
