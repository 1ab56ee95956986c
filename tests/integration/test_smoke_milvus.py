"""Milvus is real, on milvus-lite AND a Milvus server: 1,000 normalised vectors, and each
vector's nearest neighbour is itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

pytestmark = pytest.mark.integration

ROWS, DIM = 1_000, 32


@pytest.fixture
def client_and_collection(milvus_uri: str) -> Iterator[tuple[MilvusClient, str]]:
    client = MilvusClient(uri=milvus_uri)
    name = f"smoke_{uuid.uuid4().hex[:12]}"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index)
    try:
        yield client, name
    finally:
        client.drop_collection(name)
        client.close()


def test_each_vector_is_its_own_nearest_neighbour(
    client_and_collection: tuple[MilvusClient, str],
) -> None:
    client, name = client_and_collection
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client.insert(name, [{"id": i, "vec": v.tolist()} for i, v in enumerate(vectors)])
    client.load_collection(name)

    stats = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    assert stats[0]["count(*)"] == ROWS

    nearest: list[int] = []
    for start in range(0, ROWS, 100):
        hits = client.search(
            name,
            data=vectors[start : start + 100].tolist(),
            anns_field="vec",
            limit=1,
            search_params={"metric_type": "IP"},
            consistency_level="Strong",
        )
        nearest.extend(int(h[0]["id"]) for h in hits)
    assert nearest == list(range(ROWS))
