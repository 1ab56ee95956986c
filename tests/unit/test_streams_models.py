"""Registry lookup, model trust (location, hashes, version, dim) and the ModelSet's atomic
prepare/commit on real directories — local and an fsspec `memory://` registry (downloaded)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import fsspec
import pytest

from encoder.registry import RegistryError, local_model_dir, manifest_sha256, registry_versions
from streams.config import Topics, WorkerConfig
from streams.errors import ConfigurationError, classify
from streams.events import ModelUpdate
from streams.models import ModelMismatch, ModelSet, check_start_version, model_update_for
from streams.pipeline import ModelVersions
from streams.producer import key_of_line


def write_version(root: Path, version: int, manifest: dict[str, Any] | None = None) -> Path:
    directory = root / f"v{version}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "weights.bin").write_bytes(bytes([version]) * 64)
    files = {"weights.bin": hashlib.sha256(bytes([version]) * 64).hexdigest()}
    body = {"version": version, "dim": 8, "files": files, **(manifest or {})}
    (directory / "manifest.json").write_text(json.dumps(body))
    return directory


def make_registry(root: Path, versions: list[int]) -> None:
    for v in versions:
        write_version(root, v)
    (root / "v99").mkdir()  # no manifest: an unfinished copy, not a version
    (root / "notes").mkdir()


def test_registry_versions_lists_complete_versions_in_order(tmp_path: Path) -> None:
    make_registry(tmp_path, [10, 2, 1])
    assert registry_versions(str(tmp_path)) == [1, 2, 10]
    assert registry_versions(str(tmp_path / "absent")) == []


def test_model_update_for_carries_the_manifest_hash(tmp_path: Path) -> None:
    make_registry(tmp_path, [3])
    update = model_update_for(str(tmp_path), 3, "candidate")
    expected = hashlib.sha256((tmp_path / "v3" / "manifest.json").read_bytes()).hexdigest()
    assert update.manifest_sha256 == expected == manifest_sha256(str(tmp_path / "v3"))
    assert update.registry_uri.endswith("v3")


def test_a_missing_start_version_is_a_one_line_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no model version") as empty:
        check_start_version("var/registry", [], None)
    with pytest.raises(ConfigurationError, match="PINCLIP_MODEL_VERSION=3"):
        check_start_version("var/registry", [1, 2], 3)
    assert "\n" not in str(empty.value) and classify(empty.value) == "fatal"
    check_start_version("var/registry", [1, 2], 2)


class Loaded:
    """A loader that records where it ran: loading must never block the event loop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.closed = False
        try:
            asyncio.get_running_loop()
            self.on_event_loop = True
        except RuntimeError:
            self.on_event_loop = False

    async def close(self) -> None:
        self.closed = True


async def started(registry: Path) -> ModelSet:
    models = ModelSet(Loaded, registry.parent / "cache", str(registry))
    models.dim = 8
    await models.start(1)
    return models


async def test_model_set_follows_the_dual_write_rule_and_closes_unloaded(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg", [1, 2])
    models = await started(tmp_path / "reg")
    v1 = models.service(1)
    await models.apply(model_update_for(str(tmp_path / "reg"), 2, "candidate"))
    assert models.targets() == (1, 2)
    assert models.service(2).directory == tmp_path / "reg" / "v2"
    assert not models.service(2).on_event_loop and not v1.on_event_loop
    await models.apply(model_update_for(str(tmp_path / "reg"), 2, "promoted"))
    assert models.state == ModelVersions(live=2)
    assert v1.closed
    with pytest.raises(KeyError):
        models.service(1)


def forged(update: ModelUpdate, **changes: Any) -> ModelUpdate:
    return update.model_copy(update=changes)


@pytest.mark.parametrize(
    "location",
    [
        "{elsewhere}/v2",  # a real model, but not in the configured registry
        "{registry}/v2/../../elsewhere/v2",
        "file://{elsewhere}/v2",
        "http://169.254.169.254/latest/v2",
        "memory://{registry}/v2",
    ],
)
async def test_an_update_may_only_name_a_version_of_the_configured_registry(
    tmp_path: Path, location: str
) -> None:
    make_registry(tmp_path / "reg", [1])
    write_version(tmp_path / "elsewhere", 2)
    models = await started(tmp_path / "reg")
    update = model_update_for(str(tmp_path / "elsewhere"), 2, "candidate")
    uri = location.format(registry=tmp_path / "reg", elsewhere=tmp_path / "elsewhere")
    with pytest.raises(ModelMismatch) as refused:
        await models.prepare(forged(update, registry_uri=uri))
    assert refused.value.reason == "untrusted_registry"
    assert models.state == ModelVersions(live=1)


async def test_other_spellings_of_the_registry_are_the_same_place(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg", [1, 2])
    models = await started(tmp_path / "reg")
    update = model_update_for(str(tmp_path / "reg"), 2, "candidate")
    for uri in (f"file://{tmp_path}/reg/v2/", f"{tmp_path}/reg/./v2"):
        prepared = await models.prepare(forged(update, registry_uri=uri))
        await models.discard(prepared)
        assert prepared.service.closed


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ({"version": 3}, "version_mismatch"),
        ({"dim": 16}, "dim_mismatch"),
        ({"files": {"weights.bin": "0" * 64}}, "corrupt_model"),
        ({"files": {"../../v1/weights.bin": "0" * 64}}, "corrupt_model"),
        ({"dim": "many"}, "bad_manifest"),
    ],
)
async def test_the_loaded_manifest_must_be_what_was_announced(
    tmp_path: Path, manifest: dict[str, Any], reason: str
) -> None:
    make_registry(tmp_path / "reg", [1])
    write_version(tmp_path / "reg", 2, manifest)
    models = await started(tmp_path / "reg")
    with pytest.raises(ModelMismatch) as refused:
        await models.prepare(model_update_for(str(tmp_path / "reg"), 2, "candidate"))
    assert refused.value.reason == reason
    assert models.state == ModelVersions(live=1) and models.targets() == (1,)


async def test_a_forged_hash_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg", [1, 2])
    models = await started(tmp_path / "reg")
    update = model_update_for(str(tmp_path / "reg"), 2, "candidate")
    with pytest.raises(ModelMismatch) as refused:
        await models.apply(forged(update, manifest_sha256="0" * 64))
    assert refused.value.reason == "manifest_mismatch"
    assert models.state == ModelVersions(live=1)  # unchanged: keep serving v1 only
    await models.apply(update)
    promoted = model_update_for(str(tmp_path / "reg"), 2, "promoted")
    with pytest.raises(ModelMismatch):  # promotion must name the model that was loaded
        await models.apply(forged(promoted, manifest_sha256="1" * 64))
    assert models.state == ModelVersions(live=1, next=2)


async def test_a_remote_registry_is_cached_by_content_hash_only(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/reg-{tmp_path.name}"
    for version in (1, 2):
        local = write_version(tmp_path / "src", version)
        for path in local.iterdir():
            fs.pipe_file(f"{root}/v{version}/{path.name}", path.read_bytes())
    registry = f"memory://{root}"
    models = ModelSet(Loaded, tmp_path / "cache", registry)
    await models.start(1)
    update = model_update_for(registry, 2, "candidate")
    await models.apply(update)
    directory = models.service(2).directory
    assert directory == tmp_path / "cache" / update.manifest_sha256
    assert (directory / "weights.bin").read_bytes() == bytes([2]) * 64
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {
        manifest_sha256(f"{registry}/v1"),
        update.manifest_sha256,
    }
    with pytest.raises(RegistryError, match="manifest_mismatch"):  # not the announced model
        local_model_dir(f"{registry}/v2", tmp_path / "other", "f" * 64)
    assert list((tmp_path / "other").iterdir()) == []
    forged = model_update_for(registry, 2, "candidate").model_copy(
        update={"version": 3, "registry_uri": f"{registry}/v3", "manifest_sha256": "e" * 64}
    )
    fs.pipe_file(f"{root}/v3/manifest.json", b'{"version": 3, "dim": 8, "files": {}}')
    before = models.state
    with pytest.raises(ModelMismatch) as caught:  # the worker's word for it: dead-lettered
        await models.prepare(forged)
    assert caught.value.reason == "manifest_mismatch" and classify(caught.value) == "deterministic"
    assert models.state == before


def test_worker_config_round_trips_through_json(tmp_path: Path) -> None:
    config = WorkerConfig(
        topics=Topics.with_prefix("t1"), state_dir=tmp_path, model_version=3, neo4j_password="pw"
    )
    again = WorkerConfig.from_json(config.to_json())
    assert again == config
    assert again.topics.created == "t1.pins.created"
    assert again.neo4j_password.get_secret_value() == "pw"


def test_producer_keys_lines_by_pin_id() -> None:
    assert key_of_line(b'{"pin_id": "p9", "x": 1}') == "p9"
    assert key_of_line(b"{broken") is None
    assert key_of_line(b"[1]") is None
    assert key_of_line(b'{"pin_id": 5}') is None
