"""What the fault tests share: one scenario's stream on the private services, its worker
processes, consumer lag as Kafka sees it, and the checks that every pin and every save landed
exactly once in Milvus and Neo4j.

Waits are deadlines, never proofs: every outcome is polled until it holds (or the deadline
fails the test), and every count is exact.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import KafkaError

from graph_store import GraphStore, GraphStoreUnavailable
from pinclip.services.private import PrivateServices
from streams.config import Topics, WorkerConfig
from streams.content.policy import FetchPolicy
from streams.events import Event, NewPin, Repin
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream
from vector_store import VectorStore, VectorStoreUnavailable

T = TypeVar("T")
WAIT_S = 240.0  # the longest any outcome may take on a busy 2-core CI machine
DIM = 32  # the tiny exported model (tests/conftest.py export_tiny_model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = WAIT_S,
    every: Callable[[], None] | None = None,
    interval_s: float = 0.5,
) -> None:
    """Poll `condition` until it holds; `every` runs on each tick (asserting invariants such as
    "the worker is still up"). Fails the test with `what` at the deadline."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if every is not None:
            every()
        if condition():
            print(f"[fault] {what}: {time.monotonic() - started:.1f} s", flush=True)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(interval_s)


def retry_unavailable(read: Callable[[], T], timeout_s: float = WAIT_S) -> T:
    """A read from a store that may still be coming back: retried while it is unavailable."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except (VectorStoreUnavailable, GraphStoreUnavailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@dataclass
class Produced:
    """Everything a scenario produced, and what it must leave in the stores."""

    pins: list[NewPin] = field(default_factory=list)
    repins: list[Repin] = field(default_factory=list)

    @property
    def pin_ids(self) -> list[str]:
        return [p.pin_id for p in self.pins]

    def savers(self) -> dict[tuple[str, str], set[str]]:
        """(pin, board) → distinct users who saved it there: the creator, then every repin."""
        edges: dict[tuple[str, str], set[str]] = {}
        for pin in self.pins:
            edges.setdefault((pin.pin_id, pin.board_id), set()).add(pin.user_id)
        for repin in self.repins:
            edges.setdefault((repin.pin_id, repin.board_id), set()).add(repin.user_id)
        return edges


class FaultRun:
    """One scenario: topics, consumer group, pin ids and collections under one unique tag."""

    def __init__(self, services: PrivateServices, config: WorkerConfig, root: Path) -> None:
        self.services = services
        self.config = config
        self.root = root
        self.prefix = f"{config.consumer_group}-"
        self.gen = SyntheticStream(self.prefix, root / "images", seed=11, inline_fraction=0.3)
        self.produced = Produced()
        self.workers: list[WorkerProcess] = []
        self.progress = StreamProgress(config)
        self._producing: list[threading.Thread] = []

    @classmethod
    def create(
        cls,
        services: PrivateServices,
        registry: Path,
        root: Path,
        name: str,
        **overrides: Any,
    ) -> FaultRun:
        tag = f"{name}{uuid.uuid4().hex[:6]}"
        config = WorkerConfig(
            kafka_bootstrap=services.kafka_bootstrap,
            topics=Topics.with_prefix(tag),
            consumer_group=tag,
            topic_partitions=overrides.pop("topic_partitions", 2),
            session_timeout_s=10.0,  # a killed worker's partitions move within seconds
            neo4j_uri=services.neo4j_uri,
            milvus_uri=services.milvus_uri,
            milvus_alias=f"{tag}_pins",
            milvus_prefix=f"{tag}_v",
            registry_url=str(registry),
            fetch=FetchPolicy(file_roots=(str(root / "images"),)),
            state_dir=root / "state",
            metrics_port=None,
        )
        from streams.topics import ensure_topics

        config = dataclasses.replace(config, **overrides)
        ensure_topics(config)  # so the progress reader sees every partition from the start
        return cls(services, config, root)

    # --- the stream ---------------------------------------------------------------------------
    def generate(self, pins: int, repins: int, rounds: int = 10) -> list[Event]:
        """`pins` new pins and `repins` repins (of pins created before them), interleaved in
        `rounds` as a live stream mixes them. Remembered as produced."""
        events: list[Event] = []
        for index in range(rounds):
            n_pins = pins // rounds + (1 if index < pins % rounds else 0)
            n_repins = repins // rounds + (1 if index < repins % rounds else 0)
            new = list(self.gen.new_pins(n_pins))
            saves = [self.gen.repin() for _ in range(n_repins)]
            self.produced.pins.extend(new)
            self.produced.repins.extend(saves)
            events.extend(new)
            events.extend(saves)
        return events

    def produce(self, events: Sequence[Event], over_s: float = 0.0) -> threading.Thread:
        """Send `events` in order, spread evenly over `over_s` seconds (a live stream rather
        than a backlog), from a thread; `join()` it to wait until Kafka has them all."""

        def send() -> None:
            started = time.monotonic()
            chunk = 50
            with EventProducer(self.config.kafka_bootstrap, self.config.topics) as producer:
                for index in range(0, len(events), chunk):
                    if over_s:
                        due = started + over_s * index / len(events)
                        time.sleep(max(0.0, due - time.monotonic()))
                    producer.send_many(events[index : index + chunk])
                producer.flush(timeout_s=WAIT_S)

        thread = threading.Thread(target=send, name=f"produce-{self.prefix}", daemon=True)
        thread.start()
        self._producing.append(thread)
        return thread

    def wait_produced(self) -> None:
        for thread in self._producing:
            thread.join(WAIT_S)
            assert not thread.is_alive(), "the producer did not finish"

    # --- workers ------------------------------------------------------------------------------
    def worker(self, name: str = "w1", metrics: bool = False) -> WorkerProcess:
        """Start a worker process of this scenario's group, with a state dir of its own (as
        separate machines would have)."""
        config = dataclasses.replace(
            self.config,
            state_dir=self.root / name,
            metrics_port=free_port() if metrics else None,
        )
        worker = WorkerProcess(config).start()
        self.workers.append(worker)
        return worker

    def metric(self, worker: WorkerProcess, name: str, **labels: str) -> float:
        """A sample from the worker's /metrics (0.0 when the series does not exist yet)."""
        port = worker.config.metrics_port
        assert port is not None, "start the worker with metrics=True"
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        series = f"{name}{{{wanted}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def worker_log_tails(self, lines: int = 40) -> str:
        parts = []
        for worker in self.workers:
            try:
                text = worker.log_path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = ["(no log)"]
            parts.append(f"--- worker log {worker.log_path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    # --- progress -----------------------------------------------------------------------------
    def embedded_count(self) -> int:
        self.progress.poll(0.2)
        return len(self.progress.embedded)

    def embedded_all(self, ids: Iterable[str]) -> bool:
        self.progress.poll(0.2)
        return all(pin_id in self.progress.embedded for pin_id in ids)

    def lag(self) -> int | None:
        """Records of the input topics not yet committed by the group, as Kafka itself reports
        it (None while the broker does not answer)."""
        topics = (self.config.topics.created, self.config.topics.repinned)
        count = self.config.topic_partitions
        partitions = [TopicPartition(topic, p) for topic in topics for p in range(count)]
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.config.kafka_bootstrap, request_timeout_ms=5000
            )
        except (KafkaError, OSError):
            return None
        try:
            group = self.config.consumer_group
            committed = admin.list_group_offsets({group: partitions})[group]
            ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
        except (KafkaError, OSError):
            return None
        finally:
            admin.close()
        done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        return sum(ends[tp].offset - done.get(tp, 0) for tp in partitions)

    def assignment(self) -> list[set[int]]:
        """Partitions of the new-pin topic held by each member of the group, as its coordinator
        reports them (an empty list while the group rebalances or Kafka does not answer)."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.config.kafka_bootstrap, request_timeout_ms=5000
            )
        except (KafkaError, OSError):
            return []
        try:
            group = admin.describe_groups([self.config.consumer_group])[self.config.consumer_group]
        except (KafkaError, OSError):
            return []
        finally:
            admin.close()
        if group.get("group_state") != "Stable":
            return []
        held = []
        for member in group.get("members", []):
            assignment = member.get("member_assignment") or {}
            partitions: set[int] = set()
            for topic in assignment.get("assigned_partitions", []):
                if topic.get("topic") == self.config.topics.created:
                    partitions.update(topic.get("partitions", []))
            held.append(partitions)
        return held

    # --- the stores ---------------------------------------------------------------------------
    def vector_store(self) -> VectorStore:
        return VectorStore(
            self.config.milvus_uri,
            alias=self.config.milvus_alias,
            dim=DIM,
            prefix=self.config.milvus_prefix,
        )

    def graph_store(self) -> GraphStore:
        return GraphStore(self.config.neo4j_uri)

    def assert_every_pin_once_in_milvus(self) -> None:
        ids = self.produced.pin_ids
        store = self.vector_store()
        try:
            # A restarted 2.3.5 server answers writes at once but reads only once its query
            # node is back (~25 s): reading is retried, what is read is exact.
            rows = retry_unavailable(
                lambda: [row.pin_id for row in store.get(ids, version=1, consistency="Strong")]
            )
            count = retry_unavailable(lambda: store.count(1))
        finally:
            store.close()
        duplicates = [pin_id for pin_id, n in Counter(rows).items() if n > 1]
        missing = sorted(set(ids) - set(rows))
        assert not duplicates, f"{len(duplicates)} pins stored twice, e.g. {duplicates[:5]}"
        assert not missing, f"{len(missing)} pins missing from Milvus, e.g. {missing[:5]}"
        assert count == len(ids), f"Milvus counts {count} rows for {len(ids)} pins"

    def assert_every_save_once_in_neo4j(self) -> None:
        expected = self.produced.savers()
        with self.graph_store() as graph:
            edges = [edge for page in graph.iter_saves(id_prefix=self.prefix) for edge in page]
            pins = graph.count_pins(id_prefix=self.prefix)
        pairs = Counter((e.pin_id, e.board_id) for e in edges)
        doubled = [pair for pair, n in pairs.items() if n > 1]
        assert not doubled, f"{len(doubled)} save edges stored twice, e.g. {doubled[:5]}"
        assert set(pairs) == set(expected), (
            f"edges missing: {sorted(set(expected) - set(pairs))[:5]}, "
            f"unexpected: {sorted(set(pairs) - set(expected))[:5]}"
        )
        wrong = [
            (e.pin_id, e.board_id, e.saves, len(expected[(e.pin_id, e.board_id)]))
            for e in edges
            if e.saves != len(expected[(e.pin_id, e.board_id)])
        ]
        assert not wrong, f"{len(wrong)} edges count the wrong savers, e.g. {wrong[:5]}"
        assert pins == len(self.produced.pins), f"{pins} pins with content in Neo4j"

    def wait_until_graph_complete(self) -> None:
        """Repins are their own agent: wait until Neo4j holds every expected edge."""
        want = len(self.produced.savers())
        with self.graph_store() as graph:
            wait_for(
                lambda: graph.count_saves(id_prefix=self.prefix) >= want,
                f"{want} save edges in Neo4j",
            )

    def assert_no_dead_letters(self) -> None:
        self.progress.poll(0.2)
        reasons = Counter(f"{d.stage}/{d.reason}" for d in self.progress.dead)
        assert not reasons, f"dead letters: {dict(reasons)}"

    # --- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        for worker in self.workers:
            worker.stop(timeout_s=20)
        self.progress.close()
