"""The model registry on a local directory: versions, eval.json, half-uploaded versions."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from encoder.config import PinClipConfig  # noqa: E402
from encoder.manifest import Manifest  # noqa: E402
from encoder.model import PinClipModel  # noqa: E402
from pinclip.registry import ModelRegistry  # noqa: E402


def test_register_versions_eval_and_live(tmp_path: Path) -> None:
    torch.manual_seed(0)
    registry = ModelRegistry(str(tmp_path / "reg"))
    assert registry.versions() == [] and registry.latest() is None and registry.live() is None
    model = PinClipModel(PinClipConfig.tiny())
    report = {"cold_start_recall@10": 0.25, "cold_start_mrr": 0.4, "rows": {"random": {}}}
    v1, manifest = registry.register_model(model, report)
    v2, _ = registry.register_model(model, None, parent_version=v1)
    assert (v1, v2) == (1, 2) and registry.versions() == [1, 2]
    assert manifest.eval_summary["cold_start_recall@10"] == 0.25
    assert registry.read_eval(1) == report and registry.read_eval(2) is None
    local = registry.local_dir(2, tmp_path / "cache")
    assert Manifest.load(local).parent_version == 1 and Manifest.load(local).verify(local) == []
    with pytest.raises(FileExistsError):
        registry.upload(local, 2)
    registry.set_live(2)
    assert registry.live() == 2
    update = registry.model_update(2, "candidate")
    assert update.registry_uri == registry.version_url(2) and len(update.manifest_sha256) == 64


def test_version_without_manifest_is_invisible(tmp_path: Path) -> None:
    (tmp_path / "reg" / "v7").mkdir(parents=True)
    (tmp_path / "reg" / "v7" / "pin.onnx").write_bytes(b"partial upload")
    registry = ModelRegistry(str(tmp_path / "reg"))
    assert registry.versions() == [] and registry.latest() is None
