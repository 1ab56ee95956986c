"""`pinclip publish` and `pinclip backfill` check versions before acting, and say what is wrong
in one line; `pinclip retrain` starts from the live model's training configuration.

The commands run as a user runs them (a subprocess of the real CLI on a real registry)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pinclip.errors import UserError
from pinclip.registry import ModelRegistry, weights_sha256
from pinclip.retrain import retrain_template
from trainer.config import TrainConfig


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `pinclip train` leaves it: model/ and train_config.json."""
    import torch

    from encoder.config import PinClipConfig
    from encoder.model import PinClipModel

    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    PinClipModel(PinClipConfig.tiny()).save(run / "model")
    TrainConfig(model="tiny", steps=7, batch_size=4).save(run / "train_config.json")
    return run


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def registry_1_2(tmp_path_factory: pytest.TempPathFactory, export_tiny_model: Any) -> Path:
    """A registry holding v1 and v2 (read-only for the tests that share it)."""
    registry = tmp_path_factory.mktemp("shared") / "registry"
    export_tiny_model(registry, 1)
    export_tiny_model(registry, 2)
    return registry


def test_unknown_versions_get_one_line_naming_the_ones_there_are(
    tmp_path: Path, registry_1_2: Path, run_pinclip: Any
) -> None:
    for command in (["publish", "--version", "7", "--no-send"], ["backfill", "--version", "7"]):
        line = one_error_line(run_pinclip(*command, cwd=tmp_path, registry_url=str(registry_1_2)))
        assert line == f"error: no v7 in the registry {registry_1_2} (have 1, 2)"
    with pytest.raises(UserError, match=r"^no v1 in the registry .* \(it is empty\)$"):
        ModelRegistry(str(tmp_path / "empty")).require(1)


def test_publishing_a_run_twice_is_refused_and_the_config_is_kept(
    tmp_path: Path, trained_run: Path, run_pinclip: Any
) -> None:
    registry = tmp_path / "registry"
    first = run_pinclip(
        "publish", "--run", str(trained_run), "--no-send", cwd=tmp_path, registry_url=str(registry)
    )
    assert first.returncode == 0, first.stderr
    assert f"registered v1 at {registry}/v1" in first.stdout
    again = run_pinclip(
        "publish", "--run", str(trained_run), "--no-send", cwd=tmp_path, registry_url=str(registry)
    )
    assert one_error_line(again) == (
        f"error: {trained_run} is already registered as v1; "
        "announce it again with `pinclip publish --version 1`"
    )
    assert ModelRegistry(str(registry)).versions() == [1]
    stored = ModelRegistry(str(registry)).read_train_config(1)
    assert stored is not None and (stored["model"], stored["steps"]) == ("tiny", 7)


def test_a_taken_version_number_and_a_missing_model_are_refused(
    tmp_path: Path, registry_1_2: Path, trained_run: Path
) -> None:
    from pinclip.commands_models import _register_run

    registry = ModelRegistry(str(registry_1_2))
    with pytest.raises(UserError, match="already has v1; leave out --version to register as v3"):
        _register_run(registry, trained_run, 1)
    with pytest.raises(UserError, match="holds no trained model"):
        _register_run(registry, tmp_path, None)
    assert registry.versions() == [1, 2]


def test_weights_identity_ignores_the_later_eval_report(trained_run: Path, tmp_path: Path) -> None:
    before = weights_sha256(trained_run / "model")
    copy = tmp_path / "model"
    shutil.copytree(trained_run / "model", copy)
    (copy / "eval.json").write_text("{}")
    assert weights_sha256(copy) == before
    (copy / "config.json").write_text(json.dumps({"changed": True}))
    assert weights_sha256(copy) != before


def test_retrain_starts_from_the_live_models_training_configuration(
    tmp_path: Path, trained_run: Path, registry_1_2: Path
) -> None:
    shared = ModelRegistry(str(registry_1_2))  # versions without a stored training config
    cfg, origin = retrain_template(shared, 1)
    assert cfg.model_config == shared.read_model_config(1) and cfg.model_config
    assert "architecture" in origin

    stored = json.loads((trained_run / "train_config.json").read_text())
    (tmp_path / "registry" / "v3").mkdir(parents=True)
    (tmp_path / "registry" / "v3" / "train_config.json").write_text(json.dumps(stored))
    cfg, origin = retrain_template(ModelRegistry(str(tmp_path / "registry")), 3)
    assert (cfg.model, cfg.steps, cfg.batch_size) == ("tiny", 7, 4)
    assert origin == "live v3's training configuration (model tiny)"

    cfg, origin = retrain_template(shared, None)
    assert origin.startswith("no live model")
    cfg, origin = retrain_template(shared, 1, preset="small")
    assert cfg.model == "small" and "--model" in origin


def test_workers_mark_the_versions_they_write_and_marks_never_overwrite(tmp_path: Path) -> None:
    """What a backfill reads (streams.writers): one collection property per worker."""
    from vector_store import UnknownVersion, VectorStore

    store = VectorStore(str(tmp_path / "milvus.db"), dim=8)
    try:
        store.ensure_version(2)  # what a worker does while it prepares candidate v2
        assert store.writers(2) == set()
        store.mark_writer(2, "pinclip-a-1-x")  # ... and only after it committed it
        store.mark_writer(2, "pinclip-b-2-y")
        store.mark_writer(2, "pinclip-a-1-x")  # again (a replayed update): still one mark
        assert store.writers(2) == {"pinclip-a-1-x", "pinclip-b-2-y"}
        store.switch_alias(2)  # the lifecycle's own properties live beside the marks
        assert store.writers(2) == {"pinclip-a-1-x", "pinclip-b-2-y"}
        with pytest.raises(UnknownVersion):
            store.mark_writer(3, "pinclip-a-1-x")
    finally:
        store.close()
