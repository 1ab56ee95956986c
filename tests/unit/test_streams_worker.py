"""PinWorker without Kafka: real images, in-memory stores that can fail like a real outage."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import generate_latest
from streams_fakes import MemoryGraph, MemoryVectors, b64, make_worker, pin_record, png

from streams.events import Repin
from streams.metrics import WRITE_RETRIES
from streams.models import model_update_for
from streams.pipeline import SourceRecord


async def test_a_mixed_batch_writes_the_good_pins_and_dead_letters_the_rest(
    tmp_path: Path,
) -> None:
    image_file = tmp_path / "red.png"
    image_file.write_bytes(png((255, 0, 0)))
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    assert vectors.alias == 1  # a fresh system gets its alias
    records = [
        pin_record(0, "file", image_uri=image_file.as_uri()),
        pin_record(1, "inline", image_b64=b64(png((0, 0, 255)))),
        pin_record(2, "corrupt", image_b64=b64(b"not an image")),
        SourceRecord("unit.pins.created", 0, 3, b"{oops"),
        pin_record(4, "missing", image_uri=(tmp_path / "gone.png").as_uri()),
    ]
    outcome = await worker.handle_new_pins(records)
    assert sorted(e.pin_id for e in outcome.embedded) == ["file", "inline"]
    assert {(d.source_offset, d.stage, d.reason) for d in outcome.dead} == {
        (2, "decode", "unsupported_format"),  # the real ImagePreprocessor
        (3, "parse", "bad_json"),
        (4, "fetch", "unreachable"),
    }
    assert sorted(vectors.rows[1]) == ["file", "inline"]
    assert graph.saves == {("file", "b1"), ("inline", "b1")}
    stored = graph.pins["inline"].image_uri
    assert stored.startswith("file://") and stored != graph.pins["file"].image_uri
    from streams.content import load_image_bytes

    assert load_image_bytes(stored, worker.fetcher.policy) == png((0, 0, 255))
    exposed = generate_latest().decode()
    assert 'pinclip_dlq_total{reason="bad_json",stage="parse"}' in exposed
    assert 'pinclip_freshness_seconds_count{consistency="Strong"}' in exposed
    await worker.close()


async def test_an_outage_is_waited_out_and_nothing_is_dropped(tmp_path: Path) -> None:
    image_file = tmp_path / "green.png"
    image_file.write_bytes(png((0, 255, 0)))
    vectors, graph = MemoryVectors(failures=3), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    before = WRITE_RETRIES.labels("milvus")._value.get()
    outcome = await worker.handle_new_pins(
        [pin_record(i, f"p{i}", image_uri=image_file.as_uri()) for i in range(4)]
    )
    assert len(outcome.embedded) == 4 and outcome.dead == []
    assert sorted(vectors.rows[1]) == ["p0", "p1", "p2", "p3"]
    assert WRITE_RETRIES.labels("milvus")._value.get() - before == 3
    await worker.close()


async def test_candidate_means_dual_writes_and_promotion_ends_them(tmp_path: Path) -> None:
    image_file = tmp_path / "x.png"
    image_file.write_bytes(png((9, 9, 9)))
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    reg = worker.config.registry_url

    def update(stage: str) -> SourceRecord:
        return SourceRecord("u.model", 0, 0, model_update_for(reg, 2, stage).to_json_bytes())

    assert vectors.marks == {}  # nothing to tell a backfill before a candidate
    await worker.handle_model_update(update("candidate"))
    # Committed, then marked: the versions this worker now writes every new pin into.
    assert vectors.marks == {1: {worker.writer_id}, 2: {worker.writer_id}}
    both = await worker.handle_new_pins([pin_record(0, "a", image_uri=image_file.as_uri())])
    assert both.embedded[0].model_versions == [1, 2]
    assert "a" in vectors.rows[1] and "a" in vectors.rows[2]
    assert vectors.rows[2]["a"].model_version == 2
    assert not np.allclose(vectors.rows[1]["a"].pin, vectors.rows[2]["a"].pin)

    await worker.handle_model_update(update("promoted"))
    assert vectors.marks == {1: {worker.writer_id}, 2: {worker.writer_id}}  # once per version
    after = await worker.handle_new_pins([pin_record(1, "b", image_uri=image_file.as_uri())])
    assert after.embedded[0].model_versions == [2]
    assert "b" in vectors.rows[2] and "b" not in vectors.rows[1]

    bad = SourceRecord(
        "u.model", 0, 5, b'{"version": 3, "registry_uri": "x", "stage": "candidate"}'
    )
    outcome = await worker.handle_model_update(bad)
    assert [(d.stage, d.reason) for d in outcome.dead] == [("schema", "missing_field")]
    await worker.close()


async def test_repins_are_merged_per_batch(tmp_path: Path) -> None:
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    now = datetime.now(UTC)
    records = [
        SourceRecord("r", 0, i, Repin(pin_id=p, board_id=b, user_id="u", ts=now).to_json_bytes())
        for i, (p, b) in enumerate([("p", "b1"), ("p", "b2"), ("p", "b1")])
    ]
    records.append(SourceRecord("r", 0, 9, b'{"pin_id": "p"}'))
    outcome = await worker.handle_repins(records)
    assert graph.saves == {("p", "b1"), ("p", "b2")}
    assert [d.reason for d in outcome.dead] == ["missing_field"]
    await worker.close()


def test_a_taken_metrics_port_does_not_stop_the_worker() -> None:
    import socket

    from streams.metrics import serve_metrics

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        assert serve_metrics(taken.getsockname()[1]) is False


async def test_hostile_image_uris_are_dead_lettered_alone_and_never_contacted(
    tmp_path: Path, image_server: Any
) -> None:
    """Regressions (issue 9): a URI the URL/IDNA parser rejects used to raise out of the batch;
    loopback URIs were fetched and the dead letter named the port/status."""
    server = image_server("127.0.0.1")
    image_file = tmp_path / "ok.png"
    image_file.write_bytes(png((9, 9, 9)))
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    hostile = {
        "idna": "http://☃.com/x.png",
        "loopback": server.url(),
        "decimal": server.url(host="2130706433"),
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "outside_roots": "file:///etc/passwd",
    }
    records = [pin_record(0, "good", image_uri=image_file.as_uri())]
    records += [pin_record(i + 1, k, image_uri=v) for i, (k, v) in enumerate(hostile.items())]
    outcome = await worker.handle_new_pins(records)
    assert [e.pin_id for e in outcome.embedded] == ["good"]
    dead = {d.pin_id: (d.stage, d.reason) for d in outcome.dead}
    assert dead == {
        "idna": ("fetch", "unsupported_uri"),
        "loopback": ("fetch", "forbidden"),
        "decimal": ("fetch", "forbidden"),
        "metadata": ("fetch", "forbidden"),
        "outside_roots": ("fetch", "forbidden"),
    }
    assert all(str(server.port) not in d.detail for d in outcome.dead)
    assert server.requests == []
    await worker.close()


async def test_a_refused_mark_is_logged_and_the_update_still_applies(tmp_path: Path) -> None:
    """The mark only lets a backfill start: a store that refuses it must not dead-letter the
    model update (it was applied); the backfill then waits for this worker and names it."""
    vectors, graph = MemoryVectors(), MemoryGraph()
    worker = await make_worker(tmp_path, vectors, graph)
    vectors.faults.queue("mark_writer", ConnectionError("blip"), ValueError("refused"))
    update = model_update_for(worker.config.registry_url, 2, "candidate")
    outcome = await worker.handle_model_update(SourceRecord("u", 0, 0, update.to_json_bytes()))
    assert outcome.dead == [] and worker.models.targets() == (1, 2)
    assert vectors.marks == {2: {worker.writer_id}}  # v1: retried then refused; v2 marked
    await worker.close()
