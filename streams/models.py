"""Which model versions the worker serves: model trust and atomic load/unload.

The registry's layout and reading live in encoder.registry (a directory, any fsspec URL, of
`v<N>/` model directories with `manifest.json`); this module decides what the worker trusts.
A ModelUpdate comes from outside, so it is trusted for nothing but the version it names:
- it may only name `v<N>` of the *configured* registry (`registry_uri` must be exactly that
  directory; no other fsspec URL is ever opened);
- the manifest found there must hash to the announced sha256 and state the announced version and
  the dimension the collections were built with; every file must match the manifest's hashes;
- a remote version is downloaded into a cache keyed by that content hash (hex only: no name from
  outside becomes a path), and only a verified copy is moved into place.
Applying an update is two steps: `prepare` (verify, load off the event loop — no state change)
and `commit` (switch the served versions). A failure while preparing leaves the worker exactly
as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from encoder.registry import (
    MANIFEST,
    RegistryError,
    local_model_dir,
    manifest_sha256,
    version_uri,
)
from streams.errors import ConfigurationError, DeterministicError
from streams.events import ModelUpdate
from streams.pipeline import ModelPlan, ModelVersions, plan_model_update
from streams.ports import Embedder

log = structlog.get_logger(__name__)


class ModelMismatch(DeterministicError):
    """A ModelUpdate the worker refuses: untrusted location, or a model that does not match
    what was announced. Dead-lettered (stage `model`); the served versions do not change."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("model", reason, detail)


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


def check_start_version(registry_url: str, versions: list[int], configured: int | None) -> None:
    """Fail fast, in one line, when the registry cannot give the worker a start version."""
    if configured is None and not versions:
        raise ConfigurationError(
            f"no model version v<N> with manifest.json in the registry {registry_url!r}: "
            "train one (`pinclip train`) or set PINCLIP_REGISTRY_URL"
        )
    if configured is not None and configured not in versions:
        raise ConfigurationError(
            f"PINCLIP_MODEL_VERSION={configured} is not in the registry {registry_url!r} "
            f"(versions there: {versions})"
        )


# --- trust ----------------------------------------------------------------------------------


def _canonical(url: str) -> str:
    """One spelling per location: `file://` and relative local paths become absolute paths;
    `.`/`..` segments and trailing slashes are resolved on every URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        local = rest if sep else url
        return str(Path(posixpath.normpath(str(Path(local).absolute()))))
    return f"{scheme.lower()}://{posixpath.normpath(rest)}"


def trusted_version_uri(registry_url: str, update: ModelUpdate) -> str:
    """The configured registry's `v<N>` for this update; ModelMismatch if the update names any
    other location (the worker never opens a URL taken from an event)."""
    expected = version_uri(registry_url, update.version)
    if _canonical(update.registry_uri) != _canonical(expected):
        raise ModelMismatch(
            "untrusted_registry",
            f"v{update.version} is only loaded from the configured registry, not from the "
            "location named in the update",
        )
    return expected


def verify_model_dir(directory: Path, update: ModelUpdate, dim: int | None) -> None:
    """The directory is the announced model: manifest sha256, version, dim and file hashes."""
    raw = (directory / MANIFEST).read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != update.manifest_sha256:
        raise ModelMismatch(
            "manifest_mismatch",
            f"v{update.version}: manifest sha256 {actual} != announced {update.manifest_sha256}",
        )
    try:
        manifest = json.loads(raw)
        version, found_dim = int(manifest["version"]), int(manifest["dim"])
        files = dict(manifest.get("files", {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelMismatch("bad_manifest", f"v{update.version}: {type(exc).__name__}") from exc
    if version != update.version:
        raise ModelMismatch("version_mismatch", f"manifest says v{version}, not v{update.version}")
    if dim is not None and found_dim != dim:
        raise ModelMismatch("dim_mismatch", f"v{version} has dim {found_dim}, collections {dim}")
    bad = [name for name, digest in sorted(files.items()) if not _file_ok(directory, name, digest)]
    if bad:
        raise ModelMismatch("corrupt_model", f"v{version}: {len(bad)} file(s) differ: {bad[:3]}")


def _file_ok(directory: Path, name: str, digest: str) -> bool:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        return False  # a manifest may not point outside its directory
    path = directory / relative
    if not path.is_file():
        return False
    from encoder.manifest import sha256_file

    return sha256_file(path) == digest


# --- the served versions ------------------------------------------------------------------


Loader = Callable[[Path], Any]  # returns an Embedder (or an awaitable of one)


@dataclass
class PreparedUpdate:
    """A verified, loaded model update that has not changed anything yet."""

    update: ModelUpdate
    plan: ModelPlan
    service: Embedder | None = None  # the loaded encoder of `plan.load`, if any


class ModelSet:
    """The encoders the worker holds: the live one and, during a transition, the next one."""

    def __init__(self, loader: Loader, cache_dir: Path, registry_url: str) -> None:
        self._loader = loader
        self._cache_dir = cache_dir
        self.registry_url = registry_url  # the only place models are loaded from
        self.dim: int | None = None  # set at start: the dimension of the collections
        self.state = ModelVersions()
        self._services: dict[int, Embedder] = {}
        self._digests: dict[int, str] = {}
        self.on_change: list[Callable[[ModelVersions], Awaitable[None] | None]] = []

    def service(self, version: int) -> Embedder:
        return self._services[version]

    def targets(self) -> tuple[int, ...]:
        return self.state.write_targets()

    async def start(self, version: int) -> None:
        """Load the start version (picked by the worker from its own registry and the alias)."""
        uri = version_uri(self.registry_url, version)
        directory = await asyncio.to_thread(local_model_dir, uri, self._cache_dir)
        self._services[version] = await self._load(directory)
        self.state = ModelVersions(live=version)
        log.info("model_started", version=version)

    async def prepare(self, update: ModelUpdate) -> PreparedUpdate:
        """Verify and load what `update` needs — off the event loop, changing nothing."""
        plan = plan_model_update(self.state, update)
        if plan.ignored:
            return PreparedUpdate(update, plan)
        uri = trusted_version_uri(self.registry_url, update)
        if plan.load is None:  # promoting the loaded candidate: it must be the same model
            if self._digests.get(update.version) != update.manifest_sha256:
                raise ModelMismatch("manifest_mismatch", f"v{update.version} != loaded candidate")
            return PreparedUpdate(update, plan)
        directory = await asyncio.to_thread(self._fetch_verified, uri, update)
        return PreparedUpdate(update, plan, await self._load(directory))

    def _fetch_verified(self, uri: str, update: ModelUpdate) -> Path:
        try:
            directory = local_model_dir(uri, self._cache_dir, update.manifest_sha256)
        except RegistryError as exc:  # a copy that is not the announced model: dead-lettered
            raise ModelMismatch(exc.reason, f"v{update.version}: {exc.detail}") from exc
        verify_model_dir(directory, update, self.dim)
        return directory

    async def commit(self, prepared: PreparedUpdate) -> ModelPlan:
        """Switch to the prepared state (no I/O but closing what is unloaded)."""
        plan, update = prepared.plan, prepared.update
        if plan.ignored:
            log.info("model_update_ignored", version=update.version, why=plan.ignored)
            return plan
        if plan.load is not None:
            assert prepared.service is not None, "a plan that loads comes with its service"
            self._services[plan.load] = prepared.service
            self._digests[plan.load] = update.manifest_sha256
        self.state = plan.state
        for version in plan.unload:
            self._digests.pop(version, None)
            await _close(self._services.pop(version, None))
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

    async def discard(self, prepared: PreparedUpdate) -> None:
        """Drop a prepared update that will not be committed."""
        await _close(prepared.service)

    async def apply(self, update: ModelUpdate) -> ModelPlan:
        """prepare + commit (for callers without a store to prepare in between)."""
        return await self.commit(await self.prepare(update))

    async def _load(self, directory: Path) -> Embedder:
        loaded: Embedder = await _maybe_await(await asyncio.to_thread(self._loader, directory))
        return loaded

    async def close(self) -> None:
        for service in self._services.values():
            await _close(service)
        self._services.clear()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _close(service: Any) -> None:
    if service is None:
        return
    for name in ("aclose", "close", "stop"):
        method = getattr(service, name, None)
        if method is not None:
            await _maybe_await(method())
            return
