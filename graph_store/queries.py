"""Every Cypher statement graph_store runs, in one place so the data model reads top to bottom.

Data model:
  (:Pin {pin_id, title, description, image_uri, created_at, user_id, is_ad, pending,
        embedded_at})  -- embedded_at: first write by the stream (kept on replays)
  (:Board {board_id})
  (:User {user_id})-[:CREATED]->(:Pin)
  (:Pin)-[:SAVED_TO {first_at, last_at, savers, saves}]->(:Board)
"""

from __future__ import annotations

SCHEMA = (
    "CREATE CONSTRAINT pin_id_unique IF NOT EXISTS FOR (p:Pin) REQUIRE p.pin_id IS UNIQUE",
    "CREATE CONSTRAINT board_id_unique IF NOT EXISTS FOR (b:Board) REQUIRE b.board_id IS UNIQUE",
    "CREATE CONSTRAINT user_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.user_id IS UNIQUE",
)
AWAIT_INDEXES = "CALL db.awaitIndexes($timeout_s)"

# Content wins over a placeholder; setting the same values again is a no-op (replay-safe).
UPSERT_PINS = """
UNWIND $rows AS row
MERGE (p:Pin {pin_id: row.pin_id})
SET p.title = row.title, p.description = row.description, p.image_uri = row.image_uri,
    p.created_at = row.created_at, p.user_id = row.user_id, p.is_ad = row.is_ad,
    p.pending = false, p.embedded_at = coalesce(p.embedded_at, row.embedded_at)
WITH p, row WHERE row.user_id IS NOT NULL
MERGE (u:User {user_id: row.user_id})
MERGE (u)-[:CREATED]->(p)
"""

# A save for an unknown pin creates a placeholder (pending = true) that UPSERT_PINS fills.
# The edge merges savers by set union and timestamps by min/max, so a replay changes nothing
# and `saves` counts distinct savers of this pin on this board. (Setting everything inside
# MERGE's ON CREATE / ON MATCH avoids the Eager barriers a separate SET needs: ~1.6x faster.)
ADD_SAVES = """
UNWIND $rows AS row
MERGE (p:Pin {pin_id: row.pin_id})
  ON CREATE SET p.pending = true
MERGE (b:Board {board_id: row.board_id})
MERGE (p)-[r:SAVED_TO]->(b)
  ON CREATE SET r.first_at = row.first_at, r.last_at = row.last_at, r.savers = row.users,
                r.saves = size(row.users)
  ON MATCH SET
    r.first_at = CASE WHEN row.first_at < r.first_at THEN row.first_at ELSE r.first_at END,
    r.last_at = CASE WHEN row.last_at > r.last_at THEN row.last_at ELSE r.last_at END,
    r.saves = size(r.savers) + size([u IN row.users WHERE NOT u IN r.savers]),
    r.savers = r.savers + [u IN row.users WHERE NOT u IN r.savers]
"""

# One round trip for a stream's micro-batch: the saves (placeholders for unknown pins), then the
# pins (which fill them), then each pin's boards — the same MERGE bodies as above, as unit
# subqueries, in one transaction.
WRITE_BATCH = (
    "CALL () {\n"
    + ADD_SAVES.replace("$rows", "$saves")
    + "}\nCALL () {\n"
    + UPSERT_PINS.replace("$rows", "$pins")
    + """}
UNWIND $pins AS row
MATCH (p:Pin {pin_id: row.pin_id})
RETURN row.pin_id AS id, [(p)-[:SAVED_TO]->(b:Board) | b.board_id] AS boards
"""
)

GET_PINS = """
UNWIND $ids AS id
MATCH (p:Pin {pin_id: id})
RETURN p {.*} AS pin
"""

# One round trip for a page of results: each pin's content and its current boards.
PINS_WITH_BOARDS = """
UNWIND $ids AS id
MATCH (p:Pin {pin_id: id})
OPTIONAL MATCH (p)-[:SAVED_TO]->(b:Board)
RETURN p {.*} AS pin, collect(b.board_id) AS boards
"""

PING = "RETURN 1 AS ok"

BOARDS_OF_PINS = """
UNWIND $ids AS id
MATCH (p:Pin {pin_id: id})-[:SAVED_TO]->(b:Board)
RETURN id, collect(b.board_id) AS boards
"""

# Per-board cap: the `cap` pins saved to the board most recently (ties by pin_id).
PINS_OF_BOARDS = """
UNWIND $ids AS id
MATCH (b:Board {board_id: id})
CALL (b) {
  MATCH (q:Pin)-[r:SAVED_TO]->(b)
  WITH q, r ORDER BY r.last_at DESC, q.pin_id LIMIT $cap
  RETURN collect(q.pin_id) AS pins
}
RETURN id, pins
"""

# score(q) = number of p's boards on which q is among the `cap` most recently saved other pins.
CO_BOARD_NEIGHBORS = """
UNWIND $ids AS id
MATCH (p:Pin {pin_id: id})
CALL (p) {
  MATCH (p)-[:SAVED_TO]->(b:Board)
  CALL (p, b) {
    MATCH (q:Pin)-[r:SAVED_TO]->(b)
    WHERE q <> p
    WITH q, r ORDER BY r.last_at DESC, q.pin_id LIMIT $cap
    RETURN q
  }
  WITH q, count(*) AS shared
  ORDER BY shared DESC, q.pin_id
  LIMIT $k
  RETURN collect([q.pin_id, shared]) AS neighbors
}
RETURN id, neighbors
"""

# Keyset pagination as a single index range seek [start, upper): each page costs O(page), never
# O(offset). `start` is the prefix, then the successor of the last id seen (last_id + "\0");
# `upper` is the first string after every id with the prefix (the variant without it: no prefix).
_PAGE_PINS = """
MATCH (p:Pin)
WHERE p.pin_id >= $start {upper}
  AND ($include_pending OR p.pending = false)
RETURN p {{.*}} AS pin
ORDER BY p.pin_id
LIMIT $limit
"""
PAGE_PINS = _PAGE_PINS.format(upper="")
PAGE_PINS_BOUNDED = _PAGE_PINS.format(upper="AND p.pin_id < $upper")

# Keyset over (pin_id, board_id): resume inside the last pin's edges (`start` is that pin,
# inclusive, and only its boards after `after_board` count), then the following pins.
_PAGE_SAVES = """
MATCH (p:Pin)
WHERE p.pin_id >= $start {upper}
MATCH (p)-[r:SAVED_TO]->(b:Board)
WHERE p.pin_id > $start OR b.board_id > $after_board
RETURN p.pin_id AS pin_id, b.board_id AS board_id, r.saves AS saves,
       r.first_at AS first_at, r.last_at AS last_at
ORDER BY pin_id, board_id
LIMIT $limit
"""
PAGE_SAVES = _PAGE_SAVES.format(upper="")
PAGE_SAVES_BOUNDED = _PAGE_SAVES.format(upper="AND p.pin_id < $upper")

COUNT_ALL_PINS = "MATCH (p:Pin) RETURN count(p) AS n"
COUNT_PINS = "MATCH (p:Pin) WHERE p.pin_id STARTS WITH $prefix RETURN count(p) AS n"
COUNT_ALL_SAVES = "MATCH ()-[r:SAVED_TO]->() RETURN count(r) AS n"
COUNT_SAVES = """
MATCH (p:Pin)-[r:SAVED_TO]->()
WHERE p.pin_id STARTS WITH $prefix
RETURN count(r) AS n
"""

# Batched deletion, one label at a time, so a large prefix never builds one huge transaction.
DELETE_BY_PREFIX = {
    "Pin": "MATCH (n:Pin) WHERE n.pin_id STARTS WITH $prefix "
    "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
    "Board": "MATCH (n:Board) WHERE n.board_id STARTS WITH $prefix "
    "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
    "User": "MATCH (n:User) WHERE n.user_id STARTS WITH $prefix "
    "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
}
