"""The peer baselines: what a user would write in an afternoon with the same libraries.

    python -m bench.streambench.baseline CONFIG.json     # run from the repository root

Two peers, chosen by the config's `batch`:
- one at a time (`batch` 1): kafka-python poll → for each record: validate, read the image,
  decode, encode this one pin with onnxruntime, Milvus insert (pymilvus), Neo4j MERGE (neo4j
  driver) → send PinEmbedded → after the polled batch, flush and commit;
- batched (`batch` B > 1), the honest peer of a micro-batching worker: poll(max_records=B) →
  validate and decode every record → one onnxruntime batch → one Milvus insert → one Neo4j
  UNWIND → send the PinEmbedded events → flush and commit.
Both are at-least-once like the worker (commit after the writes), on the same services and the
same ONNX model and preprocessing, with no pipelining and no concurrency. Both write the same
data as the worker: a Milvus row per pin (HNSW, IP, the same fields) and the pin node, its
creator and its first board in Neo4j. The benchmark measures them exactly as it measures the
worker, from the PinEmbedded events they send.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from neo4j import GraphDatabase
from pymilvus import DataType, MilvusClient

from encoder.preprocess import pin_text
from encoder.runtime import OnnxEncoder
from streams.events import NewPin, PinEmbedded, utc_now

CYPHER = """
MERGE (p:Pin {pin_id: $pin_id})
SET p.title = $title, p.description = $description, p.image_uri = $image_uri,
    p.created_at = $created_at, p.user_id = $user_id, p.is_ad = $is_ad
MERGE (u:User {user_id: $user_id})
MERGE (u)-[:CREATED]->(p)
MERGE (b:Board {board_id: $board_id})
MERGE (p)-[r:SAVED_TO]->(b)
  ON CREATE SET r.first_at = $created_at, r.last_at = $created_at, r.savers = [$user_id],
                r.saves = 1
"""

UNWIND_CYPHER = """
UNWIND $pins AS pin
MERGE (p:Pin {pin_id: pin.pin_id})
SET p.title = pin.title, p.description = pin.description, p.image_uri = pin.image_uri,
    p.created_at = pin.created_at, p.user_id = pin.user_id, p.is_ad = pin.is_ad
MERGE (u:User {user_id: pin.user_id})
MERGE (u)-[:CREATED]->(p)
MERGE (b:Board {board_id: pin.board_id})
MERGE (p)-[r:SAVED_TO]->(b)
  ON CREATE SET r.first_at = pin.created_at, r.last_at = pin.created_at, r.savers = [pin.user_id],
                r.saves = 1
"""


@dataclass(frozen=True)
class BaselineConfig:
    kafka_bootstrap: str
    topic_created: str
    topic_embedded: str
    group: str
    milvus_uri: str
    collection: str
    neo4j_uri: str
    model_dir: str
    dim: int
    batch: int = 1

    @classmethod
    def load(cls, path: str) -> BaselineConfig:
        return cls(**json.loads(Path(path).read_text()))


def create_collection(client: MilvusClient, name: str, dim: int) -> None:
    if client.has_collection(name):
        return
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pin_id", DataType.VARCHAR, is_primary=True, max_length=128)
    schema.add_field("pin", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("created_at", DataType.INT64)
    schema.add_field(
        "board_ids", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=16, max_length=128
    )
    schema.add_field("is_ad", DataType.BOOL)
    index = MilvusClient.prepare_index_params()
    index.add_index(
        "pin", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200}
    )
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.load_collection(name)


def read_image(uri: str) -> bytes:
    return Path(unquote(urlparse(uri).path)).read_bytes()


def milvus_row(pin: NewPin, vector: Any) -> dict[str, Any]:
    return {
        "pin_id": pin.pin_id,
        "pin": vector.tolist(),
        "created_at": int(pin.created_at.timestamp() * 1000),
        "board_ids": [pin.board_id],
        "is_ad": pin.is_ad,
    }


def graph_params(pin: NewPin) -> dict[str, Any]:
    return {
        "pin_id": pin.pin_id,
        "title": pin.title,
        "description": pin.description,
        "image_uri": pin.image_uri,
        "created_at": pin.created_at,
        "user_id": pin.user_id,
        "is_ad": pin.is_ad,
        "board_id": pin.board_id,
    }


def embedded(pin: NewPin) -> PinEmbedded:
    now = utc_now()
    return PinEmbedded(
        pin_id=pin.pin_id,
        model_versions=[1],
        created_at=pin.created_at,
        embedded_at=now,
        latency_ms=(now - pin.created_at).total_seconds() * 1000.0,
    )


@dataclass
class Peer:
    """The clients both peers share, opened once."""

    cfg: BaselineConfig
    encoder: OnnxEncoder
    pre: Any
    tok: Any
    milvus: Any
    driver: Any

    def handle_one(self, record: Any) -> list[PinEmbedded]:
        """One pin: decode, encode alone, insert, MERGE."""
        pin = NewPin.model_validate_json(record.value)
        assert pin.image_uri is not None
        pixels = self.pre.load(read_image(pin.image_uri))
        ids, mask = self.tok.encode([pin_text(pin.title, pin.description)])
        vector = self.encoder.encode_pins(pixels[None], ids, mask)["pin"][0]
        self.milvus.insert(self.cfg.collection, [milvus_row(pin, vector)])
        with self.driver.session() as session:
            session.run(CYPHER, **graph_params(pin)).consume()
        return [embedded(pin)]

    def handle_batch(self, records: list[Any]) -> list[PinEmbedded]:
        """Every polled pin at once: one encoder batch, one insert, one UNWIND."""
        pins = [NewPin.model_validate_json(record.value) for record in records]
        pixels = np.stack([self.pre.load(read_image(pin.image_uri or "")) for pin in pins])
        ids, mask = self.tok.encode([pin_text(pin.title, pin.description) for pin in pins])
        vectors = self.encoder.encode_pins(pixels, ids, mask)["pin"]
        rows = [milvus_row(pin, vector) for pin, vector in zip(pins, vectors, strict=True)]
        self.milvus.insert(self.cfg.collection, rows)
        with self.driver.session() as session:
            session.run(UNWIND_CYPHER, pins=[graph_params(pin) for pin in pins]).consume()
        return [embedded(pin) for pin in pins]


def main(argv: list[str]) -> None:
    cfg = BaselineConfig.load(argv[0])
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    encoder = OnnxEncoder.load(cfg.model_dir, provider="auto")
    milvus = MilvusClient(cfg.milvus_uri)
    create_collection(milvus, cfg.collection, cfg.dim)
    driver = GraphDatabase.driver(cfg.neo4j_uri, auth=None)
    peer = Peer(
        cfg, encoder, encoder.image_preprocessor(), encoder.text_preprocessor(), milvus, driver
    )
    producer = KafkaProducer(bootstrap_servers=cfg.kafka_bootstrap, acks="all", linger_ms=5)
    consumer = KafkaConsumer(
        cfg.topic_created,
        bootstrap_servers=cfg.kafka_bootstrap,
        group_id=cfg.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    print("baseline_ready", flush=True)
    try:
        while not stop:
            polled = consumer.poll(timeout_ms=100, max_records=max(1, cfg.batch))
            for records in polled.values():
                if cfg.batch > 1:
                    done = peer.handle_batch(records)
                else:
                    done = [event for record in records for event in peer.handle_one(record)]
                for event in done:
                    producer.send(cfg.topic_embedded, event.to_json_bytes(), event.pin_id.encode())
            if polled:
                producer.flush()
                consumer.commit()
    finally:
        consumer.close()
        producer.close()
        driver.close()
        milvus.close()


if __name__ == "__main__":
    main(sys.argv[1:])
