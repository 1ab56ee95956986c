"""Issue 6 "done means": generate → train → export → publish to real Kafka → the running worker
hot-swaps → backfill fills pins_v2 and moves the alias → similar-pin queries return v2, and no
query, at any moment, saw a result list mixing versions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("torch")

from conftest import forget_stream_run

from encoder.model import PinClipModel
from graph_store import GraphStore
from pinclip.backfill import backfill
from pinclip.registry import ModelRegistry, send_model_update
from streams.config import WorkerConfig
from streams.events import NewPin
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from trainer.config import TrainConfig
from trainer.dataset import Dataset, read_dataset
from trainer.evaluate import evaluate, write_report
from trainer.export_graph import export_graph
from trainer.generator import GeneratorConfig, generate
from trainer.loop import train
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_S = 240.0
FIRST, LATER = 40, 6


def _tiny_train(data: Path, out: Path, seed: int) -> Path:
    cfg = TrainConfig(
        data=str(data), out_dir=str(out), model="tiny", steps=4, batch_size=8,
        num_workers=0, threads=1, progress=False, heldout_fraction=0.2, seed=seed,
    )  # fmt: skip
    return train(cfg, resume=False).model_dir


def _new_pins(ds: Dataset, prefix: str, start: int, count: int) -> list[NewPin]:
    """The dataset's pins as creation events (first board each), ids under `prefix`."""
    first_board: dict[str, str] = {}
    for s in ds.saves:
        first_board.setdefault(s.pin_id, s.board_id)
    out = []
    for pin in ds.pins[start : start + count]:
        out.append(
            NewPin(
                pin_id=prefix + pin.pin_id,
                board_id=prefix + first_board.get(pin.pin_id, "b-none"),
                user_id=prefix + "u1",
                title=pin.title,
                description=pin.description,
                image_uri=Path(ds.image_url(pin)).resolve().as_uri(),
                created_at=datetime.now(UTC),
            )
        )
    return out


@dataclass
class AliasReader:
    """Searches through the alias in a loop and records the versions of every result list."""

    vs: VectorStore
    query_pin: str
    lists: list[frozenset[int]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                hits = self.vs.search_by_pin(self.query_pin, k=10)
                if hits:
                    self.lists.append(frozenset(h.model_version for h in hits))
            except Exception as exc:  # recorded, asserted below
                self.errors.append(exc)
            self.stop.wait(0.05)


@pytest.fixture
def env(
    milvus_server_uri: str, worker_config: Callable[..., WorkerConfig], tmp_path: Path
) -> Iterator[tuple[WorkerConfig, str]]:
    tag = "trs" + uuid.uuid4().hex[:8]
    config = worker_config(tag, milvus_server_uri, tmp_path)
    try:
        yield config, f"{tag}-"
    finally:
        vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, prefix=config.milvus_prefix)
        vs.purge()
        vs.close()
        forget_stream_run(config, tag)


def test_retrain_publish_hot_swap_backfill_switch(
    env: tuple[WorkerConfig, str], tmp_path: Path
) -> None:
    config, prefix = env
    generate(tmp_path / "gen", GeneratorConfig(num_pins=FIRST + 2 * LATER, num_boards=8,
                                               num_users=4, image_size=32, seed=11))  # fmt: skip
    ds = read_dataset(tmp_path / "gen")
    registry = ModelRegistry(config.registry_url)
    v1_model = PinClipModel.load(_tiny_train(tmp_path / "gen", tmp_path / "run1", seed=1))
    assert registry.register_model(v1_model)[0] == 1

    producer = EventProducer(config.kafka_bootstrap, config.topics)
    progress = StreamProgress(config)
    vs = VectorStore(
        config.milvus_uri, alias=config.milvus_alias, dim=32, prefix=config.milvus_prefix
    )
    reader: AliasReader | None = None
    try:
        with WorkerProcess(config, log_path=tmp_path / "worker.log") as worker:
            # v1 serves the first pins.
            producer.send_many(_new_pins(ds, prefix, 0, FIRST))
            producer.flush()
            assert progress.wait_until(lambda p: len(p.embedded) >= FIRST, WAIT_S)
            assert {tuple(e.model_versions) for e in progress.embedded.values()} == {(1,)}
            assert vs.live_version() == 1

            reader = AliasReader(vs, prefix + ds.pins[0].pin_id)
            thread = threading.Thread(target=reader.run, daemon=True)
            thread.start()

            # Retrain from the live graph, evaluate, register v2, announce it.
            with GraphStore(
                config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
            ) as gs:
                export_graph(gs, tmp_path / "export", id_prefix=prefix)
            exported = read_dataset(tmp_path / "export")
            assert len(exported.pins) == FIRST
            model_dir = _tiny_train(tmp_path / "export", tmp_path / "run2", seed=2)
            report = evaluate(exported, model_dir, 0.2, 0, baselines=("random",))
            write_report(report, model_dir)
            v2, _ = registry.register_model(PinClipModel.load(model_dir), report, 1)
            send_model_update(
                config.kafka_bootstrap,
                config.topics.model_updates,
                registry.model_update(v2, "candidate"),
            )
            # An update applies once verified and loaded (pins keep flowing to v1 meanwhile).
            worker.wait_logged("model_update_applied", WAIT_S, version=v2, stage="candidate")

            # The worker hot-swaps: new pins now go to both versions.
            later = _new_pins(ds, prefix, FIRST, LATER)
            producer.send_many(later)
            producer.flush()
            assert progress.wait_until(lambda p: all(x.pin_id in p.embedded for x in later), WAIT_S)
            assert {tuple(sorted(progress.embedded[x.pin_id].model_versions)) for x in later} == {
                (1, 2)
            }

            # Backfill v2, switch the alias, announce the promotion.
            with GraphStore(
                config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
            ) as gs:
                filled = backfill(
                    v2,
                    registry.local_dir(v2, tmp_path / "cache"),
                    gs,
                    vs,
                    config.state_dir,
                    batch_size=16,
                    id_prefix=prefix,
                    fetch_policy=config.fetch,
                    progress=False,
                    on_switched=lambda v: send_model_update(
                        config.kafka_bootstrap,
                        config.topics.model_updates,
                        registry.model_update(v, "promoted"),
                    ),
                )
            assert filled.switched and filled.embedded == FIRST + LATER
            assert vs.live_version() == 2 and vs.count(2) == FIRST + LATER

            # Let the reader see the new version through the alias (bounded wait, asserted below).
            deadline = threading.Event()
            for _ in range(600):
                if frozenset({2}) in reader.lists[-5:] or deadline.wait(0.1):
                    break

            # After the promotion the worker writes v2 only.
            worker.wait_logged("model_update_applied", WAIT_S, version=v2, stage="promoted")
            last = _new_pins(ds, prefix, FIRST + LATER, LATER)
            producer.send_many(last)
            producer.flush()
            assert progress.wait_until(lambda p: all(x.pin_id in p.embedded for x in last), WAIT_S)
            assert {tuple(progress.embedded[x.pin_id].model_versions) for x in last} == {(2,)}

            reader.stop.set()
            thread.join(timeout=30)
            hits = vs.search_by_pin(prefix + ds.pins[1].pin_id, k=10)
            assert hits and {h.model_version for h in hits} == {2}
            assert vs.get([last[0].pin_id])[0].model_version == 2
    finally:
        if reader is not None:
            reader.stop.set()
        progress.close()
        producer.close()
        vs.close()

    assert not reader.errors
    assert reader.lists, "the reader never got a result"
    assert all(len(versions) == 1 for versions in reader.lists), "a query mixed versions"
    seen = [next(iter(v)) for v in reader.lists]
    assert seen[0] == 1 and seen[-1] == 2
    assert seen == sorted(seen)  # v1 until the switch, v2 after, never back
