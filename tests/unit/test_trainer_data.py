"""Dataset format, generator structure/determinism, cold-start split, samplers, metrics."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trainer.dataset import DatasetFormatError, PinRecord, SaveRecord, read_dataset, write_dataset
from trainer.generator import GeneratorConfig, generate
from trainer.metrics import retrieval_metrics
from trainer.neighbors import CoBoardSampler, PinBoardGraph, RandomWalkSampler
from trainer.split import cold_start_split

SMALL = GeneratorConfig(num_pins=400, num_boards=60, num_users=20, image_size=32, seed=7)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_under_seed(tmp_path: Path) -> None:
    generate(tmp_path / "a", SMALL)
    generate(tmp_path / "b", SMALL)
    generate(tmp_path / "c", GeneratorConfig(**{**SMALL.__dict__, "seed": 8}))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_generator_structure(tmp_path: Path) -> None:
    latents, boards = generate(tmp_path, SMALL)
    ds = read_dataset(tmp_path)
    assert len(ds.pins) == 400 and ds.meta["format_version"] == 1
    assert all(len(ds.read_image_bytes(p)) > 0 for p in ds.pins[:5])
    # Skewed board sizes: the biggest board is many times the median one.
    sizes = sorted(Counter(s.board_id for s in ds.saves).values())
    assert sizes[-1] >= 8 * sizes[len(sizes) // 2]
    # Boards are community-pure far above chance (graph-only signal).
    community = {lat.pin_id: lat.community for lat in latents}
    board_comm = {b.board_id: b.community for b in boards}
    agree = np.mean([community[s.pin_id] == board_comm[s.board_id] for s in ds.saves])
    assert agree > 0.7 > 1 / SMALL.num_communities
    # Style never leaks into text; mood words appear in text.
    texts = " ".join(f"{p.title} {p.description}" for p in ds.pins)
    assert "stripes" not in texts and "checker" not in texts
    assert any(w in texts for w in ("cozy", "minimalist", "vintage", "bold"))


def test_reader_rejects_foreign_and_future_formats(tmp_path: Path) -> None:
    write_dataset(tmp_path, [PinRecord("p1", "t", "d", "x.png")], [SaveRecord("p1", "b1")])
    assert read_dataset(tmp_path).saves[0].user_id is None
    meta = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DatasetFormatError, match="newer"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"no dataset\.json"):
        read_dataset(tmp_path / "nowhere")


def test_reader_resolves_relative_and_absolute_images(tmp_path: Path) -> None:
    (tmp_path / "img.bin").write_bytes(b"abc")
    other = tmp_path / "elsewhere.bin"
    other.write_bytes(b"xyz")
    pins = [PinRecord("p1", "", "", "img.bin"), PinRecord("p2", "", "", other.as_uri())]
    write_dataset(tmp_path, pins, [])
    ds = read_dataset(tmp_path)
    assert ds.read_image_bytes(ds.pins[0]) == b"abc"
    assert ds.read_image_bytes(ds.pins[1]) == b"xyz"


def _toy_saves() -> list[SaveRecord]:
    # b1: p1 p2 p3; b2: p3 p4; b3: p5 p6; p7 saved nowhere shared.
    pairs = [("p1", "b1"), ("p2", "b1"), ("p3", "b1"), ("p3", "b2"), ("p4", "b2")]
    pairs += [("p5", "b3"), ("p6", "b3"), ("p7", "b4")]
    return [SaveRecord(p, b) for p, b in pairs]


def test_cold_start_split_removes_all_edges_and_finds_relevant() -> None:
    saves = _toy_saves()
    pins = [PinRecord(f"p{i}", "", "", "") for i in range(1, 8)]
    from trainer.dataset import Dataset

    ds = Dataset(root=".", pins=pins, saves=saves)
    split = cold_start_split(ds, heldout_fraction=0.3, seed=3)
    again = cold_start_split(ds, heldout_fraction=0.3, seed=3)
    assert split == again
    heldout_all = set(p.pin_id for p in pins) - set(split.train_pin_ids)
    assert set(split.heldout_pin_ids) <= heldout_all
    assert not any(s.pin_id in heldout_all for s in split.train_saves)
    full = {"p1": {"b1"}, "p2": {"b1"}, "p3": {"b1", "b2"}, "p4": {"b2"}, "p5": {"b3"}}
    full |= {"p6": {"b3"}, "p7": {"b4"}}
    for h in split.heldout_pin_ids:
        expected = {p for p in split.train_pin_ids if full[p] & full[h]}
        assert split.relevant[h] == expected and expected


def test_samplers_return_co_board_pins() -> None:
    graph = PinBoardGraph(_toy_saves())
    rng = random.Random(0)
    co = CoBoardSampler(graph)
    seen = Counter(co.sample("p3", rng) for _ in range(300))
    assert set(seen) == {"p1", "p2", "p4"}
    assert co.sample("p7", rng) is None  # alone on its board
    walk = RandomWalkSampler(graph, num_walks=50, walk_length=3, top_k=5)
    got = {walk.sample("p1", rng) for _ in range(100)}
    assert got <= {"p2", "p3", "p4"} and "p2" in got and "p5" not in got


def test_retrieval_metrics_hand_case() -> None:
    cands = np.eye(4, dtype=np.float32)
    # query 0 ranks candidates 0 > 1 > 2 > 3; query 1 ranks 3 > 2 > 1 > 0.
    q = np.array([[0.9, 0.5, 0.2, 0.1], [0.1, 0.2, 0.5, 0.9]], dtype=np.float32)
    relevant = [{1, 3}, {0}]
    m = retrieval_metrics(q, cands, relevant, ks=(1, 2, 3))
    # q0: top1 {0} → 0/1; top2 {0,1} → 1/2; top3 {0,1,2} → 1/2. q1: top1..3 miss 0 → 0.
    assert m["recall@1"] == pytest.approx(0.0)
    assert m["recall@2"] == pytest.approx(0.25)
    assert m["recall@3"] == pytest.approx(0.25)
    # First relevant ranks: q0 → 2, q1 → 4.
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m["queries"] == 2
