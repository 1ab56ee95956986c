"""Issue 9's "Done means" on real Kafka, Neo4j and a Milvus server: a worker fed a stream in which
good pins are interleaved with hostile records of every kind stays up, embeds every good pin,
dead-letters every hostile record with a stage and a reason, and never contacts a loopback
address named in an event (a local HTTP server that must receive no request).

The test checks the contract, not how it is met: which reason a record gets is the fetch
policy's and the preprocessor's business; that it gets one, on its own, is the stream's.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import hostile_records
import pytest
from conftest import forget_stream_run
from kafka import KafkaProducer

from encoder.registry import manifest_sha256
from graph_store import GraphStore
from streams.config import WorkerConfig
from streams.content import FetchPolicy
from streams.events import DeadLetter
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from vector_store import VectorStore

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
N_GOOD = 40
WAIT_S = 180.0


@dataclass
class Outcome:
    good: set[str]
    hostile: dict[tuple[str, int], str]  # (topic, offset) → kind
    letters: dict[tuple[str, int], DeadLetter] = field(default_factory=dict)
    embedded: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    alive: bool = False
    loopback_port: int = 0
    in_milvus: set[str] = field(default_factory=set)
    in_neo4j: set[str] = field(default_factory=set)
    hostile_ids_stored: set[str] = field(default_factory=set)


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with a valid PNG — if the worker ever asks, the pin would embed."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.path)
        body = hostile_records.png((8, 8))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_server() -> Iterator[ThreadingHTTPServer]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()


Labelled = list[tuple[str | None, bytes]]  # (hostile kind, or None for a good pin; value)


def produce(producer: KafkaProducer, topic: str, records: Labelled) -> dict[tuple[str, int], str]:
    """Send in order; returns (topic, offset) → kind for the hostile records."""
    futures = [(kind, producer.send(topic, value=value)) for kind, value in records]
    producer.flush(timeout=60)
    return {(topic, f.get(timeout=60).offset): kind for kind, f in futures if kind is not None}


def interleave(good: Labelled, bad: Labelled) -> Labelled:
    out: Labelled = []
    for i in range(max(len(good), len(bad))):
        out += good[i : i + 1] + bad[i : i + 1]
    return out


def watch(progress: StreamProgress, worker: WorkerProcess, result: Outcome) -> None:
    """Until every good pin is embedded and every hostile record dead-lettered (or WAIT_S)."""

    def settled(p: StreamProgress) -> bool:
        lettered = {(d.source_topic, d.source_offset) for d in p.dead}
        return result.good <= set(p.embedded) and set(result.hostile) <= lettered

    progress.wait_until(settled, WAIT_S)
    time.sleep(2.0)  # anything late (a second letter, a stray embed) shows up too
    progress.poll(1.0)
    result.alive = worker.alive()
    result.letters = {(d.source_topic, d.source_offset): d for d in progress.dead}
    result.embedded = set(progress.embedded)


@pytest.fixture(scope="module")
def outcome(
    milvus_server_uri: str,
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
    loopback_server: ThreadingHTTPServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Outcome]:
    tmp = tmp_path_factory.mktemp("hostile")
    tag = "hostile" + uuid.uuid4().hex[:8]
    dim = export_tiny_model(tmp / "registry", 1)
    export_tiny_model(tmp / "elsewhere", 2)
    (tmp / "roots").mkdir()
    policy = FetchPolicy(max_bytes=500_000, deadline_s=3.0, file_roots=(str(tmp / "roots"),))
    config = worker_config(tag, milvus_server_uri, tmp, fetch=policy, batch_max=16)
    gen = SyntheticStream(f"{tag}-", tmp / "roots" / "images", seed=11, inline_fraction=0.5)
    good = list(gen.new_pins(N_GOOD))
    base = {k: v for k, v in json.loads(good[0].to_json_bytes()).items() if "image" not in k}
    port = loopback_server.server_address[1]
    bad_pins = hostile_records.new_pins(f"{tag}-", base, tmp / "roots", f"http://127.0.0.1:{port}")
    sha = manifest_sha256(f"{tmp}/registry/v1")
    updates = hostile_records.model_updates(tmp / "registry", tmp / "elsewhere", sha)
    repins = hostile_records.repins(f"{tag}-")
    topics = config.topics
    result = Outcome({p.pin_id for p in good}, {}, loopback_port=port)
    producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, acks="all")
    try:
        with StreamProgress(config) as progress:
            result.hostile |= produce(producer, topics.model_updates, list(updates))
            result.hostile |= produce(producer, topics.repinned, list(repins))
            with WorkerProcess(config) as worker:
                good_records: Labelled = [(None, p.to_json_bytes()) for p in good]
                mixed = interleave(good_records, list(bad_pins))
                result.hostile |= produce(producer, topics.created, mixed)
                watch(progress, worker, result)
        result.requests = list(Recorder.seen)
        stored_ids(config, dim, result, [f"{tag}-bad-{kind}" for kind, _ in bad_pins])
        yield result
    finally:
        producer.close()
        vectors = VectorStore(
            config.milvus_uri, alias=config.milvus_alias, dim=dim, prefix=config.milvus_prefix
        )
        vectors.purge()
        vectors.close()
        forget_stream_run(config, tag)


def stored_ids(config: WorkerConfig, dim: int, result: Outcome, hostile_ids: list[str]) -> None:
    ids = sorted(result.good) + hostile_ids
    vectors = VectorStore(
        config.milvus_uri, alias=config.milvus_alias, dim=dim, prefix=config.milvus_prefix
    )
    try:
        found = {v.pin_id for v in vectors.get(ids)}
    finally:
        vectors.close()
    with GraphStore(
        config.neo4j_uri, config.neo4j_user, config.neo4j_password.get_secret_value()
    ) as graph:
        nodes = {p.pin_id for p in graph.get_pins(ids) if not p.pending}
    result.in_milvus, result.in_neo4j = found & result.good, nodes & result.good
    result.hostile_ids_stored = (found | nodes) - result.good


def test_the_worker_stays_up(outcome: Outcome) -> None:
    assert outcome.alive


def test_every_good_pin_is_embedded_and_stored(outcome: Outcome) -> None:
    assert outcome.good <= outcome.embedded
    assert outcome.in_milvus == outcome.good
    assert outcome.in_neo4j == outcome.good


def test_every_hostile_record_is_dead_lettered_with_a_reason(outcome: Outcome) -> None:
    missing = {kind for place, kind in outcome.hostile.items() if place not in outcome.letters}
    assert not missing, f"hostile records without a dead letter: {sorted(missing)}"
    for place, kind in outcome.hostile.items():
        letter = outcome.letters[place]
        assert letter.stage and letter.reason, kind
        assert len(letter.to_json_bytes()) < 1_000_000, kind
    assert not outcome.embedded - outcome.good
    assert not outcome.hostile_ids_stored


def test_no_request_reaches_a_loopback_address_named_in_an_event(outcome: Outcome) -> None:
    assert outcome.requests == []
    leaked = [
        (kind, letter.detail)
        for place, kind in outcome.hostile.items()
        if (letter := outcome.letters.get(place)) and str(outcome.loopback_port) in letter.detail
    ]
    assert not leaked, "a dead letter names the probed port (a port-scan oracle)"


def test_dead_letters_say_where_each_kind_failed(outcome: Outcome) -> None:
    stages: dict[str, Any] = {
        outcome.hostile[place]: outcome.letters[place].stage
        for place in outcome.hostile
        if place in outcome.letters
    }
    assert stages["bad-json"] == "parse"
    assert stages["time-overflow"] == stages["time-far-future"] == "schema"
    assert stages["loopback"] == stages["metadata"] == stages["fifo"] == "fetch"
    assert stages["corrupt-image"] == stages["bomb-header"] == "decode"
    assert stages["unknown-version"] == stages["foreign-registry"] == "model"
