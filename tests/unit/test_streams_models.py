"""Registry lookup, manifest verification and the ModelSet's load/unload on real directories."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streams.config import Topics, WorkerConfig
from streams.events import ModelUpdate
from streams.models import (
    ModelMismatch,
    ModelSet,
    manifest_sha256,
    model_update_for,
    registry_versions,
)
from streams.pipeline import ModelVersions
from streams.producer import key_of_line


def make_registry(root: Path, versions: list[int]) -> None:
    for v in versions:
        (root / f"v{v}").mkdir(parents=True)
        (root / f"v{v}" / "manifest.json").write_text(f'{{"version": {v}, "dim": 8}}')
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


class Loaded:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_model_set_follows_the_dual_write_rule_and_closes_unloaded(tmp_path: Path) -> None:
    make_registry(tmp_path, [1, 2])
    models = ModelSet(Loaded, tmp_path / "cache")
    await models.start(1, str(tmp_path / "v1"))
    v1 = models.service(1)
    await models.apply(model_update_for(str(tmp_path), 2, "candidate"))
    assert models.targets() == (1, 2)
    assert models.service(2).directory == tmp_path / "v2"
    await models.apply(model_update_for(str(tmp_path), 2, "promoted"))
    assert models.state == ModelVersions(live=2)
    assert v1.closed
    with pytest.raises(KeyError):
        models.service(1)


async def test_model_set_refuses_a_model_whose_manifest_differs(tmp_path: Path) -> None:
    make_registry(tmp_path, [1, 2])
    models = ModelSet(Loaded, tmp_path / "cache")
    await models.start(1, str(tmp_path / "v1"))
    forged = ModelUpdate(
        version=2,
        registry_uri=str(tmp_path / "v2"),
        manifest_sha256="0" * 64,
        stage="candidate",
    )
    with pytest.raises(ModelMismatch):
        await models.apply(forged)
    assert models.state == ModelVersions(live=1)  # unchanged: keep serving v1 only


def test_worker_config_round_trips_through_json(tmp_path: Path) -> None:
    config = WorkerConfig(topics=Topics.with_prefix("t1"), state_dir=tmp_path, model_version=3)
    again = WorkerConfig.from_json(config.to_json())
    assert again == config
    assert again.topics.created == "t1.pins.created"


def test_producer_keys_lines_by_pin_id() -> None:
    assert key_of_line(b'{"pin_id": "p9", "x": 1}') == "p9"
    assert key_of_line(b"{broken") is None
    assert key_of_line(b"[1]") is None
    assert key_of_line(b'{"pin_id": 5}') is None
