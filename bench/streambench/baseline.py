"""The peer baseline: what a user would write in an afternoon with the same libraries.

    python -m bench.streambench.baseline CONFIG.json     # run from the repository root

kafka-python poll → for each record: validate, read the image, decode, encode this one pin with
onnxruntime, Milvus insert (pymilvus), Neo4j MERGE (neo4j driver) → send PinEmbedded → after
the polled batch, flush and commit. At-least-once like the worker (commit after the writes), on
the same services and the same ONNX model and preprocessing, with no micro-batching, no
pipelining and no concurrency. It writes the same data: a Milvus row per pin (HNSW, IP, the
same fields) and the pin node, its creator and its first board in Neo4j. The benchmark measures
it exactly as it measures the worker, from the PinEmbedded events it sends.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

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


def handle(
    record: Any,
    encoder: OnnxEncoder,
    pre: Any,
    tok: Any,
    milvus: Any,
    driver: Any,
    cfg: BaselineConfig,
) -> PinEmbedded:
    pin = NewPin.model_validate_json(record.value)
    assert pin.image_uri is not None
    pixels = pre.load(read_image(pin.image_uri))
    ids, mask = tok.encode([pin_text(pin.title, pin.description)])
    vector = encoder.encode_pins(pixels[None], ids, mask)["pin"][0]
    milvus.insert(
        cfg.collection,
        [
            {
                "pin_id": pin.pin_id,
                "pin": vector.tolist(),
                "created_at": int(pin.created_at.timestamp() * 1000),
                "board_ids": [pin.board_id],
                "is_ad": pin.is_ad,
            }
        ],
    )
    with driver.session() as session:
        session.run(
            CYPHER,
            pin_id=pin.pin_id,
            title=pin.title,
            description=pin.description,
            image_uri=pin.image_uri,
            created_at=pin.created_at,
            user_id=pin.user_id,
            is_ad=pin.is_ad,
            board_id=pin.board_id,
        ).consume()
    now = utc_now()
    return PinEmbedded(
        pin_id=pin.pin_id,
        model_versions=[1],
        created_at=pin.created_at,
        embedded_at=now,
        latency_ms=(now - pin.created_at).total_seconds() * 1000.0,
    )


def main(argv: list[str]) -> None:
    cfg = BaselineConfig.load(argv[0])
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    encoder = OnnxEncoder.load(cfg.model_dir, provider="auto")
    pre, tok = encoder.image_preprocessor(), encoder.text_preprocessor()
    milvus = MilvusClient(cfg.milvus_uri)
    create_collection(milvus, cfg.collection, cfg.dim)
    driver = GraphDatabase.driver(cfg.neo4j_uri, auth=None)
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
            polled = consumer.poll(timeout_ms=100)
            for records in polled.values():
                for record in records:
                    done = handle(record, encoder, pre, tok, milvus, driver, cfg)
                    producer.send(cfg.topic_embedded, done.to_json_bytes(), done.pin_id.encode())
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
