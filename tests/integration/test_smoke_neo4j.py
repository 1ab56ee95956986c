"""Neo4j is real: uniqueness constraints hold and MERGE makes a replay a no-op."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from neo4j import Driver, GraphDatabase
from neo4j.exceptions import ConstraintError

from pinclip.services.fixtures import Neo4jSettings

pytestmark = pytest.mark.integration

# Smoke labels of our own: the server is shared with other tests and developers.
PIN, BOARD = "SmokePin", "SmokeBoard"
SAVES = [("p1", "b1"), ("p2", "b1"), ("p2", "b2"), ("p3", "b2"), ("p4", "b3")]


@pytest.fixture
def driver(neo4j_settings: Neo4jSettings) -> Iterator[Driver]:
    auth = (neo4j_settings.user, neo4j_settings.password) if neo4j_settings.password else None
    with GraphDatabase.driver(neo4j_settings.uri, auth=auth) as drv:
        drv.execute_query(
            f"CREATE CONSTRAINT smoke_pin_id IF NOT EXISTS FOR (p:{PIN}) REQUIRE p.id IS UNIQUE"
        )
        drv.execute_query(
            f"CREATE CONSTRAINT smoke_board_id IF NOT EXISTS FOR (b:{BOARD}) REQUIRE b.id IS UNIQUE"
        )
        yield drv


@pytest.fixture
def prefix(driver: Driver) -> Iterator[str]:
    run = f"smoke-{uuid.uuid4().hex[:10]}-"
    yield run
    driver.execute_query(
        f"MATCH (n) WHERE (n:{PIN} OR n:{BOARD}) AND n.id STARTS WITH $p DETACH DELETE n", p=run
    )


def _merge_graph(driver: Driver, prefix: str) -> None:
    rows = [{"pin": prefix + p, "board": prefix + b} for p, b in SAVES]
    driver.execute_query(
        f"""UNWIND $rows AS row
        MERGE (p:{PIN} {{id: row.pin}})
        MERGE (b:{BOARD} {{id: row.board}})
        MERGE (p)-[:SAVED_TO]->(b)""",
        rows=rows,
    )


def _counts(driver: Driver, prefix: str) -> tuple[int, int, int]:
    records, _, _ = driver.execute_query(
        f"""MATCH (p:{PIN}) WHERE p.id STARTS WITH $p
        OPTIONAL MATCH (p)-[s:SAVED_TO]->(b:{BOARD})
        RETURN count(DISTINCT p) AS pins, count(DISTINCT b) AS boards, count(s) AS saves""",
        p=prefix,
    )
    row = records[0]
    return row["pins"], row["boards"], row["saves"]


def test_merging_the_same_graph_twice_changes_nothing(driver: Driver, prefix: str) -> None:
    _merge_graph(driver, prefix)
    assert _counts(driver, prefix) == (4, 3, 5)
    _merge_graph(driver, prefix)
    assert _counts(driver, prefix) == (4, 3, 5)


def test_uniqueness_constraint_rejects_a_duplicate_pin(driver: Driver, prefix: str) -> None:
    _merge_graph(driver, prefix)
    with pytest.raises(ConstraintError):
        driver.execute_query(f"CREATE (:{PIN} {{id: $id}})", id=prefix + "p1")
