"""The whole pipeline on real Kafka + Neo4j + Milvus server, with a tiny exported model.

One run (module fixture) produces 500 new pins (PNG/JPEG files and inline images), 1,000 repins
and one malformed event of each kind, crashes the worker (SIGKILL) part-way and restarts it, then
replays every event with a fresh consumer group. The tests assert what each stage left behind.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fetch_servers import ImageServer, start_image_server
from kafka.admin import KafkaAdminClient

from graph_store import GraphStore
from streams.config import Topics, WorkerConfig
from streams.content import FetchPolicy
from streams.events import NewPin, Repin
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

N_PINS = 500
N_REPINS = 1_000
MAX_IMAGE_BYTES = 200_000
WAIT_S = 240.0


def build_tiny_registry(root: Path) -> int:
    """Export PinClipModel(PinClipConfig.tiny()) as registry version 1 (torch only here)."""
    import torch

    from encoder.config import PinClipConfig
    from encoder.export import export_model
    from encoder.model import PinClipModel

    torch.manual_seed(0)
    manifest = export_model(PinClipModel(PinClipConfig.tiny()), root / "v1", 1)
    return int(manifest.dim)


@dataclass
class Run:
    config: WorkerConfig
    prefix: str
    dim: int
    pins: list[NewPin] = field(default_factory=list)
    repins: list[Repin] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # pin_id (or marker) → expected reason
    first: dict[str, Any] = field(default_factory=dict)
    replay: dict[str, Any] = field(default_factory=dict)
    progress: StreamProgress | None = None
    metrics: str = ""
    crashed_after: int = 0
    loopback: ImageServer | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def malformed_events(
    prefix: str, tmp: Path, template: dict[str, Any], loopback: ImageServer
) -> list[tuple[bytes, str]]:
    """(raw record, expected dead-letter reason) for every kind of bad input. `loopback` is a
    real HTTP server on this machine that events name in several spellings: it must receive
    no request at all (the fetch policy refuses loopback, private and metadata addresses)."""
    corrupt = tmp / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    huge = tmp / "huge.png"
    huge.write_bytes(b"\x89PNG" + b"\0" * (MAX_IMAGE_BYTES + 10))

    def pin(name: str, **fields: Any) -> bytes:
        return NewPin.model_validate(
            {**template, "pin_id": f"{prefix}bad-{name}", **fields}
        ).to_json_bytes()

    missing = {k: v for k, v in template.items() if k != "title"}
    missing["image_uri"] = huge.as_uri()
    missing["pin_id"] = f"{prefix}bad-missing"
    import json

    return [
        (b'{"pin_id": "broken', "bad_json"),
        (json.dumps(missing).encode(), "missing_field"),
        (pin("corrupt", image_uri=corrupt.as_uri()), "decode"),
        (pin("huge", image_uri=huge.as_uri()), "too_large"),
        (pin("unreachable", image_uri=(tmp / "no-such.png").as_uri()), "unreachable"),
        (pin("refused", image_uri="http://127.0.0.1:9/x.png"), "forbidden"),
        (pin("loopback", image_uri=loopback.url("/a.png")), "forbidden"),
        (pin("loopback-name", image_uri=loopback.url("/b.png", host="localhost")), "forbidden"),
        (pin("loopback-decimal", image_uri=loopback.url(host="2130706433")), "forbidden"),
        (pin("loopback-mapped", image_uri=loopback.url(host="[::ffff:127.0.0.1]")), "forbidden"),
        (pin("metadata", image_uri="http://169.254.169.254/latest/meta-data/"), "forbidden"),
        (pin("private", image_uri="http://10.0.0.1/x.png"), "forbidden"),
        (pin("idna", image_uri="http://☃.example/x.png"), "unsupported_uri"),
        (pin("outside-roots", image_uri="file:///etc/passwd"), "forbidden"),
    ]


@pytest.fixture(scope="module")
def run(
    kafka_bootstrap: str,
    neo4j_settings: Any,
    milvus_server_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("e2e")
    tag = "e2e" + uuid.uuid4().hex[:8]
    prefix = f"{tag}-"
    dim = build_tiny_registry(tmp / "registry")
    config = WorkerConfig(
        kafka_bootstrap=kafka_bootstrap,
        topics=Topics.with_prefix(tag),
        consumer_group=tag,
        topic_partitions=2,
        neo4j_uri=neo4j_settings.uri,
        neo4j_user=neo4j_settings.user,
        neo4j_password=neo4j_settings.password,
        milvus_uri=milvus_server_uri,
        milvus_alias=f"{tag}_pins",
        milvus_prefix=f"{tag}_v",
        registry_url=str(tmp / "registry"),
        fetch=FetchPolicy(max_bytes=MAX_IMAGE_BYTES, deadline_s=3.0, file_roots=(str(tmp),)),
        state_dir=tmp / "state",
        metrics_port=free_port(),
    )
    state = Run(config, prefix, dim)
    gen = SyntheticStream(prefix, tmp / "images", seed=7, inline_fraction=0.3)
    state.pins = list(gen.new_pins(N_PINS))
    state.repins = [gen.repin() for _ in range(N_REPINS)]
    template = state.pins[0].model_dump(
        mode="json", exclude_none=True, exclude={"image_uri", "image_b64"}
    )
    loopback, stop_loopback = start_image_server("127.0.0.1")
    state.loopback = loopback
    malformed = malformed_events(prefix, tmp, template, loopback)

    producer = EventProducer(kafka_bootstrap, config.topics)
    progress = StreamProgress(config)
    state.progress = progress
    try:
        # Phase 1: pins, malformed records, repins — with a crash (SIGKILL) part-way.
        producer.send_many(state.pins[: N_PINS // 2])
        for raw, _ in malformed:
            producer.send_raw(config.topics.created, raw)
        producer.flush()
        with WorkerProcess(config) as worker:
            progress.wait_until(lambda p: len(p.embedded) >= 50, WAIT_S)
            worker.kill()
            state.crashed_after = len(progress.embedded)
        producer.send_many(state.pins[N_PINS // 2 :])
        producer.send_many(state.repins)
        producer.flush()
        with WorkerProcess(config):
            progress.wait_until(
                lambda p: len(p.embedded) >= N_PINS and len(p.dead) >= len(malformed), WAIT_S
            )
            # repins are a separate agent: wait until the graph has every edge
            wait_for_graph_edges(config, state, progress)
            state.metrics = httpx.get(f"http://127.0.0.1:{config.metrics_port}/metrics").text
        state.first = snapshot(config, state)

        # Phase 2: replay every event — a fresh consumer group reads both topics from offset 0.
        before = progress.embedded_records
        replay_config = WorkerConfig(**{**vars(config), "consumer_group": f"{tag}-replay"})
        with WorkerProcess(replay_config):
            progress.wait_until(lambda p: p.embedded_records >= before + N_PINS, WAIT_S)
            wait_for_graph_edges(config, state, progress)
        state.replay = snapshot(config, state)
        yield state
    finally:
        stop_loopback()
        progress.close()
        producer.close()
        cleanup(config, prefix, tag)


def expected_edges(state: Run) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p.pin_id: {p.board_id} for p in state.pins}
    for r in state.repins:
        edges[r.pin_id].add(r.board_id)
    return edges


def graph(config: WorkerConfig) -> GraphStore:
    return GraphStore(config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value())


def wait_for_graph_edges(config: WorkerConfig, state: Run, progress: StreamProgress) -> None:
    want = sum(len(b) for b in expected_edges(state).values())
    with graph(config) as gs:
        progress.wait_until(lambda _: gs.count_saves(id_prefix=state.prefix) >= want, WAIT_S)


def snapshot(config: WorkerConfig, state: Run) -> dict[str, Any]:
    ids = [p.pin_id for p in state.pins]
    vs = VectorStore(
        config.milvus_uri, alias=config.milvus_alias, dim=state.dim, prefix=config.milvus_prefix
    )
    try:
        with graph(config) as gs:
            return {
                "milvus_count": vs.count(1),
                "milvus_ids": sorted(p.pin_id for p in vs.get(ids)),
                "live": vs.live_version(),
                "neighbours": {pid: vs.search_by_pin(pid, k=5) for pid in ids[:5]},
                "graph_pins": gs.count_pins(id_prefix=state.prefix),
                "graph_saves": gs.count_saves(id_prefix=state.prefix),
                "boards": gs.board_ids(ids),
                "nodes": {n.pin_id: n for n in gs.get_pins(ids)},
            }
    finally:
        vs.close()


def cleanup(config: WorkerConfig, prefix: str, tag: str) -> None:
    vs = VectorStore(config.milvus_uri, alias=config.milvus_alias, prefix=config.milvus_prefix)
    vs.purge()
    vs.close()
    with graph(config) as gs:
        gs.delete_by_prefix(prefix)
    admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(tag)]
        admin.delete_topics(mine)
    finally:
        admin.close()


def test_every_pin_is_searchable_through_the_alias(run: Run) -> None:
    ids = sorted(p.pin_id for p in run.pins)
    assert run.first["live"] == 1
    assert run.first["milvus_ids"] == ids
    assert run.first["milvus_count"] == N_PINS
    for pin_id, hits in run.first["neighbours"].items():
        assert len(hits) == 5
        assert pin_id not in {h.pin_id for h in hits}
        assert all(h.pin_id.startswith(run.prefix) and h.model_version == 1 for h in hits)


def test_every_pin_emitted_pin_embedded(run: Run) -> None:
    assert run.progress is not None
    embedded = run.progress.embedded
    assert set(embedded) == {p.pin_id for p in run.pins}
    assert all(e.model_versions == [1] and e.latency_ms >= 0 for e in embedded.values())
    assert run.crashed_after > 0


def test_graph_has_every_pin_and_exactly_the_expected_edges(run: Run) -> None:
    want = expected_edges(run)
    got = {pid: set(boards) for pid, boards in run.first["boards"].items()}
    assert got == want
    assert run.first["graph_pins"] == N_PINS  # no placeholder left: every repinned pin exists
    nodes = run.first["nodes"]
    inline = [p for p in run.pins if p.image_b64 is not None]
    assert inline, "the stream must contain inline images"
    for pin in run.pins:
        node = nodes[pin.pin_id]
        assert (node.title, node.user_id, node.is_ad) == (pin.title, pin.user_id, pin.is_ad)
        assert node.image_uri == (pin.image_uri or node.image_uri)
    from streams.content import load_image_bytes
    from streams.events import decode_inline_image

    for pin in inline[:10]:  # stored inline images can be re-read for a backfill
        uri = nodes[pin.pin_id].image_uri
        assert uri and uri.startswith("file://")
        policy = run.config.fetch.with_roots(run.config.content_root)
        assert load_image_bytes(uri, policy) == decode_inline_image(pin.image_b64 or "")


def test_malformed_events_are_dead_lettered_with_a_reason(run: Run) -> None:
    assert run.progress is not None
    by_pin = {d.pin_id: d for d in run.progress.dead if d.pin_id}
    prefix = run.prefix
    assert by_pin[f"{prefix}bad-huge"].reason == "too_large"
    assert by_pin[f"{prefix}bad-huge"].stage == "fetch"
    assert by_pin[f"{prefix}bad-unreachable"].reason == "unreachable"
    for name, reason in [
        ("refused", "forbidden"), ("loopback", "forbidden"), ("loopback-name", "forbidden"),
        ("loopback-decimal", "forbidden"), ("loopback-mapped", "forbidden"),
        ("metadata", "forbidden"), ("private", "forbidden"), ("idna", "unsupported_uri"),
        ("outside-roots", "forbidden"),
    ]:  # fmt: skip
        letter = by_pin[f"{prefix}bad-{name}"]
        assert (letter.stage, letter.reason) == ("fetch", reason), name
        assert str(run.loopback.port if run.loopback else "") not in letter.detail
    assert run.loopback is not None and run.loopback.requests == []  # never contacted
    corrupt = by_pin[f"{prefix}bad-corrupt"]
    assert corrupt.stage == "decode" and corrupt.reason
    anonymous = {(d.stage, d.reason) for d in run.progress.dead if not d.pin_id}
    assert ("parse", "bad_json") in anonymous
    assert ("schema", "missing_field") in anonymous
    broken = next(d for d in run.progress.dead if d.reason == "bad_json")
    assert broken.payload == '{"pin_id": "broken'
    assert broken.source_topic == run.config.topics.created
    assert not any(d.pin_id == p.pin_id for d in run.progress.dead for p in run.pins)


def test_replaying_every_event_creates_no_duplicates(run: Run) -> None:
    assert run.replay["milvus_count"] == N_PINS
    assert run.replay["milvus_ids"] == run.first["milvus_ids"]
    assert run.replay["graph_pins"] == run.first["graph_pins"] == N_PINS
    assert run.replay["graph_saves"] == run.first["graph_saves"]
    assert run.replay["boards"] == run.first["boards"]


def test_worker_exposes_prometheus_metrics(run: Run) -> None:
    text = run.metrics
    created = run.config.topics.created
    assert f'pinclip_consumer_lag{{partition="0",topic="{created}"}}' in text
    assert 'pinclip_events_in_total{type="new_pin"}' in text
    assert 'pinclip_events_in_total{type="repin"}' in text  # repins came after the restart
    assert 'pinclip_freshness_seconds_bucket{consistency="Strong",le="1.0"}' in text
    assert "pinclip_encode_seconds_count" in text and "pinclip_batch_size_count" in text
