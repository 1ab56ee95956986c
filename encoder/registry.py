"""The model registry's layout, and reading it: versioned model directories under one fsspec URL.

    <registry>/v<N>/manifest.json   a version exists once its manifest does (uploaded last)
    <registry>/v<N>/...             the export (encoder.export) plus eval.json, train_config.json,
                                    source.json written beside it at registration
    <registry>/live.json            {"version": N}: what the alias served at the last promotion

This is the one home of that layout. Everything here only reads; who may *write* a version is
pinclip.registry (registration), and whether a version named in an event may be *trusted* is
streams.models (the worker's checks). The module imports nothing of ours, so any package can read
the registry without pulling in the stream or the application.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import fsspec

MANIFEST = "manifest.json"
EVAL = "eval.json"
LIVE = "live.json"
TRAIN_CONFIG = "train_config.json"  # how the version was trained: what retrain starts from
SOURCE = "source.json"  # {"weights_sha256": ...} of the run it came from: refuses duplicates
MODEL_CONFIG = "config.json"  # encoder.model.CONFIG_FILE, named here so reading needs no torch
_VERSION_DIR = re.compile(r"^v(\d+)$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RegistryError(ValueError):
    """A registry copy that is not what it should be. `reason` is a short machine-readable word
    (bad_manifest, manifest_mismatch) that the stream turns into its dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def absolute_url(url: str) -> str:
    """Local paths become absolute so a worker in another directory resolves them the same."""
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/")
    path = url[len("file://") :] if url.startswith("file://") else url
    return os.path.abspath(path)


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
        if match and fs.exists(f"{str(entry).rstrip('/')}/{MANIFEST}"):
            found.append(int(match.group(1)))
    return sorted(found)


def manifest_sha256(model_uri: str) -> str:
    """The hash a ModelUpdate announces: sha256 of the version's manifest.json bytes."""
    fs, root = fsspec.core.url_to_fs(model_uri)
    return hashlib.sha256(fs.cat_file(f"{root.rstrip('/')}/{MANIFEST}")).hexdigest()


def manifest_dim(model_uri: str) -> int:
    """Embedding dimension from a model directory's manifest (sizes the Milvus collections)."""
    fs, root = fsspec.core.url_to_fs(model_uri)
    return int(json.loads(fs.cat_file(f"{root.rstrip('/')}/{MANIFEST}"))["dim"])


def local_model_dir(model_uri: str, cache_dir: Path, sha256: str | None = None) -> Path:
    """A local directory with the model: the path itself if local, else a copy in
    `cache_dir/<sha256 of its manifest>` — downloaded beside it, moved in only once its manifest
    hashes to `sha256` (when given), so the cache never holds a model under a wrong key."""
    fs, root = fsspec.core.url_to_fs(model_uri)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return Path(root)
    root = root.rstrip("/")
    digest = sha256 or hashlib.sha256(fs.cat_file(f"{root}/{MANIFEST}")).hexdigest()
    if not _SHA256.fullmatch(digest):
        raise RegistryError("bad_manifest", "manifest sha256 must be 64 hex digits")
    target = cache_dir / digest
    if (target / MANIFEST).exists():
        return target
    partial = cache_dir / f".partial-{digest}-{uuid.uuid4().hex}"
    try:
        fs.get(f"{root}/", str(partial), recursive=True)
        got = hashlib.sha256((partial / MANIFEST).read_bytes()).hexdigest()
        if got != digest:
            raise RegistryError("manifest_mismatch", f"downloaded manifest sha256 {got}")
        if not target.exists():
            partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


class RegistryReader:
    """One registry URL, read: its versions, what was stored beside each, and the live mark."""

    def __init__(self, url: str) -> None:
        self.url = absolute_url(url)
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root: str = root.rstrip("/")

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def version_url(self, version: int) -> str:
        return version_uri(self.url, version)

    def versions(self) -> list[int]:
        return registry_versions(self.url)

    def latest(self) -> int | None:
        found = self.versions()
        return found[-1] if found else None

    def dim(self, version: int) -> int:
        return manifest_dim(self.version_url(version))

    def manifest_sha256(self, version: int) -> str:
        return manifest_sha256(self.version_url(version))

    def local_dir(self, version: int, cache_dir: Path) -> Path:
        return local_model_dir(self.version_url(version), cache_dir)

    def read_eval(self, version: int) -> dict[str, Any] | None:
        return self._read_json(version, EVAL)

    def read_train_config(self, version: int) -> dict[str, Any] | None:
        """The TrainConfig (as a dict) v<N> was trained with; None for versions registered
        before it was recorded."""
        return self._read_json(version, TRAIN_CONFIG)

    def read_model_config(self, version: int) -> dict[str, Any] | None:
        """v<N>'s PinClipConfig, from its torch checkpoint's config file."""
        return self._read_json(version, MODEL_CONFIG)

    def version_with_weights(self, weights_sha256: str) -> int | None:
        """The registered version made from these weights, if any."""
        for version in self.versions():
            source = self._read_json(version, SOURCE) or {}
            if source.get("weights_sha256") == weights_sha256:
                return version
        return None

    def live(self) -> int | None:
        path = self._path(LIVE)
        if not self.fs.exists(path):
            return None
        return int(json.loads(self.fs.cat_file(path))["version"])

    def _read_json(self, version: int, name: str) -> dict[str, Any] | None:
        path = self._path(f"v{version}", name)
        if not self.fs.exists(path):
            return None
        data: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return data
