"""GraphStore: the thin Neo4j adapter. Shaping lives in rows.py, walking in walks.py, Cypher in
queries.py; this module only opens sessions, runs statements and converts records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import structlog
from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import ClientError, ServiceUnavailable, SessionExpired

from graph_store import queries
from graph_store.models import Neighbor, PinNode, Save, SaveEdge
from graph_store.retry import RetryPolicy, call_with_retry
from graph_store.rows import chunked, edge_rows, key_successor, pin_rows, prefix_upper_bound
from graph_store.walks import BipartiteGraph, WalkParams, walk_neighbors

log = structlog.get_logger(__name__)

T = TypeVar("T")
RETRYABLE = (ServiceUnavailable, SessionExpired)


def _native(value: Any) -> Any:
    """neo4j.time values → Python datetimes; everything else unchanged."""
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value


def _as_datetime(value: Any) -> datetime | None:
    native = _native(value)
    return native if isinstance(native, datetime) else None


def _pin_from_record(props: Mapping[str, Any]) -> PinNode:
    return PinNode(
        pin_id=props["pin_id"],
        title=props.get("title"),
        description=props.get("description"),
        image_uri=props.get("image_uri"),
        created_at=_as_datetime(props.get("created_at")),
        user_id=props.get("user_id"),
        is_ad=bool(props.get("is_ad", False)),
        pending=bool(props.get("pending", False)),
        embedded_at=_as_datetime(props.get("embedded_at")),
    )


class GraphStore:
    """The Pin–Board graph in Neo4j: idempotent batched writes, neighbor queries, paged export.

    Every operation runs in a managed transaction (the driver retries transient errors such as
    deadlocks for `transaction_retry_s`); on top of that, `retry` bounds how long a caller waits
    through an outage before `GraphStoreUnavailable` is raised.
    """

    def __init__(
        self,
        uri: str,
        user: str = "neo4j",
        password: str = "",
        database: str = "neo4j",
        *,
        batch_size: int = 1000,
        board_cap: int = 200,
        retry: RetryPolicy | None = None,
        transaction_retry_s: float = 15.0,
        connection_timeout_s: float = 5.0,
    ) -> None:
        auth = (user, password) if password else None
        self._driver: Driver = GraphDatabase.driver(
            uri,
            auth=auth,
            max_transaction_retry_time=transaction_retry_s,
            connection_timeout=connection_timeout_s,
            connection_acquisition_timeout=connection_timeout_s * 2,
            notifications_min_severity="WARNING",  # not "constraint already exists" each start
        )
        self._database = database
        self.batch_size = batch_size
        self.board_cap = board_cap
        self._retry = retry or RetryPolicy()

    # --- plumbing ----------------------------------------------------------------------------
    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, write: bool, what: str, work: Callable[[ManagedTransaction], T]) -> T:
        def attempt() -> T:
            with self._driver.session(database=self._database) as session:
                if write:
                    return session.execute_write(work)
                return session.execute_read(work)

        return call_with_retry(attempt, policy=self._retry, retry_on=RETRYABLE, what=what)

    def _read(self, what: str, query: str, **params: Any) -> list[dict[str, Any]]:
        def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
            return [record.data() for record in tx.run(query, **params)]

        return self._run(False, what, work)

    def _write(self, what: str, query: str, **params: Any) -> list[dict[str, Any]]:
        def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
            return [record.data() for record in tx.run(query, **params)]

        return self._run(True, what, work)

    # --- schema ------------------------------------------------------------------------------
    def ensure_schema(self, timeout_s: int = 60) -> None:
        """Create the uniqueness constraints if missing (safe to call at every start)."""
        for statement in queries.SCHEMA:
            try:
                self._write("ensure_schema", statement)
            except ClientError as error:  # a concurrent starter created it first
                if "EquivalentSchemaRuleAlreadyExists" not in (error.code or ""):
                    raise
        self._read("await_indexes", queries.AWAIT_INDEXES, timeout_s=timeout_s)

    # --- writes ------------------------------------------------------------------------------
    def upsert_pins(self, pins: Sequence[PinNode]) -> int:
        """Write pin content (fills placeholders), a transaction per batch; returns pins written."""
        rows = pin_rows(pins)
        for batch in chunked(rows, self.batch_size):
            self._write("upsert_pins", queries.UPSERT_PINS, rows=list(batch))
        log.debug("graph_store.upsert_pins", pins=len(rows))
        return len(rows)

    def add_saves(self, saves: Sequence[Save]) -> int:
        """Record save events as Pin–Board edges; replay-safe. Returns edges touched."""
        rows = edge_rows(saves)
        for batch in chunked(rows, self.batch_size):
            self._write("add_saves", queries.ADD_SAVES, rows=list(batch))
        log.debug("graph_store.add_saves", saves=len(saves), edges=len(rows))
        return len(rows)

    def write_batch(
        self, pins: Sequence[PinNode], saves: Sequence[Save] = ()
    ) -> dict[str, list[str]]:
        """Saves and pins in ONE statement and transaction; returns each written pin's boards.

        For a stream's micro-batch: one commit (one fsync, one round of locks) per batch instead
        of one per statement, and the boards come back in the same transaction, so the caller
        writes a pin's Milvus row with the boards the graph has — whoever writes it (the worker
        for a new pin, a backfill for an old one) writes the same row.
        """
        pin_batch, edge_batch = pin_rows(pins), edge_rows(saves)

        def work(tx: ManagedTransaction) -> dict[str, list[str]]:
            found = {
                record["id"]: sorted(record["boards"])
                for record in tx.run(queries.WRITE_BATCH, pins=pin_batch, saves=edge_batch)
            }
            return {row["pin_id"]: found.get(row["pin_id"], []) for row in pin_batch}

        boards = self._run(True, "write_batch", work)
        log.debug("graph_store.write_batch", pins=len(pin_batch), edges=len(edge_batch))
        return boards

    # --- point reads -------------------------------------------------------------------------
    def get_pins(self, pin_ids: Sequence[str]) -> list[PinNode]:
        """Pins in the order asked; unknown ids are left out."""
        found = {
            pin.pin_id: pin
            for pin in (
                _pin_from_record(r["pin"])
                for r in self._read("get_pins", queries.GET_PINS, ids=list(pin_ids))
            )
        }
        return [found[p] for p in dict.fromkeys(pin_ids) if p in found]

    def pins_with_boards(self, pin_ids: Sequence[str]) -> dict[str, tuple[PinNode, list[str]]]:
        """Content and current boards (sorted) of each known pin, in one read: what a page of
        query results needs. Unknown ids are left out."""
        records = self._read("pins_with_boards", queries.PINS_WITH_BOARDS, ids=list(pin_ids))
        return {
            r["pin"]["pin_id"]: (_pin_from_record(r["pin"]), sorted(r["boards"])) for r in records
        }

    def ping(self) -> None:
        """One round trip (readiness probes); raises like any read when Neo4j is away."""
        self._read("ping", queries.PING)

    def board_ids(self, pin_ids: Sequence[str]) -> dict[str, list[str]]:
        """Boards of each pin, sorted; a pin without boards (or unknown) maps to []."""
        records = self._read("board_ids", queries.BOARDS_OF_PINS, ids=list(pin_ids))
        found = {r["id"]: sorted(r["boards"]) for r in records}
        return {p: found.get(p, []) for p in pin_ids}

    def pin_ids_of_boards(
        self, board_ids: Sequence[str], cap: int | None = None
    ) -> dict[str, list[str]]:
        """The `cap` most recently saved pins of each board, sorted by pin_id."""
        records = self._read(
            "pins_of_boards",
            queries.PINS_OF_BOARDS,
            ids=list(board_ids),
            cap=cap if cap is not None else self.board_cap,
        )
        found = {r["id"]: sorted(r["pins"]) for r in records}
        return {b: found.get(b, []) for b in board_ids}

    # --- neighbors ---------------------------------------------------------------------------
    def co_board_neighbors(
        self, pin_id: str, k: int = 20, board_cap: int | None = None
    ) -> list[Neighbor]:
        """Pins sharing boards with `pin_id`; see co_board_neighbors_batch for the ranking."""
        return self.co_board_neighbors_batch([pin_id], k, board_cap)[pin_id]

    def co_board_neighbors_batch(
        self, pin_ids: Sequence[str], k: int = 20, board_cap: int | None = None
    ) -> dict[str, list[Neighbor]]:
        """score(q) = shared boards, counting a board only if q is among its `board_cap` most
        recently saved other pins; ties by pin_id. One query for the whole batch."""
        records = self._read(
            "co_board_neighbors",
            queries.CO_BOARD_NEIGHBORS,
            ids=list(dict.fromkeys(pin_ids)),
            k=k,
            cap=board_cap if board_cap is not None else self.board_cap,
        )
        found = {
            r["id"]: [Neighbor(pin, float(shared)) for pin, shared in r["neighbors"]]
            for r in records
        }
        return {p: found.get(p, []) for p in pin_ids}

    def random_walk_neighbors(
        self,
        pin_ids: Sequence[str],
        num_walks: int = 64,
        walk_length: int = 3,
        restart_prob: float = 0.3,
        top_k: int = 20,
        seed: int = 0,
        board_cap: int | None = None,
        cache: BipartiteGraph | None = None,
    ) -> dict[str, list[Neighbor]]:
        """PinSage-style walks (see graph_store.walks); score = share of visits. Adjacency is
        fetched lazily, two queries per hop for the whole batch; boards are capped at their
        `board_cap` most recently saved pins, so giant boards cost a bounded fetch.

        `cache`: pass the same (initially empty) BipartiteGraph to many calls — e.g. the
        batches of one training epoch — and each pin's and board's adjacency is fetched once
        and reused; the caller decides how stale it may get (a fresh graph per call by default).
        Use one `board_cap` per cache."""
        params = WalkParams(num_walks, walk_length, restart_prob, top_k)
        loader = _Neo4jAdjacency(self, board_cap if board_cap is not None else self.board_cap)
        graph = cache if cache is not None else BipartiteGraph()
        result = walk_neighbors(graph, pin_ids, params, seed, loader)
        return {p: result[p] for p in pin_ids}

    # --- export ------------------------------------------------------------------------------
    def iter_pins(
        self, page_size: int = 5000, *, id_prefix: str = "", include_pending: bool = False
    ) -> Iterator[list[PinNode]]:
        """All pins in pin_id order, one page per query (keyset pagination, constant memory).
        Placeholders (no content yet) are skipped unless `include_pending`."""
        upper = prefix_upper_bound(id_prefix)
        query = queries.PAGE_PINS if upper is None else queries.PAGE_PINS_BOUNDED
        start = id_prefix
        while True:
            records = self._read(
                "iter_pins",
                query,
                start=start,
                upper=upper,
                include_pending=include_pending,
                limit=page_size,
            )
            page = [_pin_from_record(r["pin"]) for r in records]
            if page:
                yield page
            if len(page) < page_size:
                return
            start = key_successor(page[-1].pin_id)

    def pins_between(self, first: str, last: str, limit: int = 100_000) -> list[PinNode]:
        """Pins with first <= pin_id <= last in pin_id order (a re-embed work item's range);
        placeholders skipped."""
        records = self._read(
            "pins_between",
            queries.PAGE_PINS_BOUNDED,
            start=first,
            upper=key_successor(last),
            include_pending=False,
            limit=limit,
        )
        return [_pin_from_record(r["pin"]) for r in records]

    def iter_saves(
        self, page_size: int = 10000, *, id_prefix: str = ""
    ) -> Iterator[list[SaveEdge]]:
        """All Pin–Board edges in (pin_id, board_id) order, keyset-paged like iter_pins."""
        upper = prefix_upper_bound(id_prefix)
        query = queries.PAGE_SAVES if upper is None else queries.PAGE_SAVES_BOUNDED
        start, after_board = id_prefix, ""
        while True:
            records = self._read(
                "iter_saves",
                query,
                start=start,
                after_board=after_board,
                upper=upper,
                limit=page_size,
            )
            page = [
                SaveEdge(
                    pin_id=r["pin_id"],
                    board_id=r["board_id"],
                    saves=int(r["saves"]),
                    first_at=_native(r["first_at"]),
                    last_at=_native(r["last_at"]),
                )
                for r in records
            ]
            if page:
                yield page
            if len(page) < page_size:
                return
            start, after_board = page[-1].pin_id, page[-1].board_id

    def count_pins(self, *, id_prefix: str = "") -> int:
        if not id_prefix:
            return int(self._read("count_pins", queries.COUNT_ALL_PINS)[0]["n"])
        return int(self._read("count_pins", queries.COUNT_PINS, prefix=id_prefix)[0]["n"])

    def count_saves(self, *, id_prefix: str = "") -> int:
        """Number of Pin–Board edges (not save events)."""
        if not id_prefix:
            return int(self._read("count_saves", queries.COUNT_ALL_SAVES)[0]["n"])
        return int(self._read("count_saves", queries.COUNT_SAVES, prefix=id_prefix)[0]["n"])

    # --- maintenance -------------------------------------------------------------------------
    def delete_by_prefix(self, id_prefix: str, batch_size: int = 5000) -> int:
        """Delete pins, boards and users whose ids start with `id_prefix` (tests, benchmarks).
        Refuses an empty prefix: the server is shared."""
        if not id_prefix:
            raise ValueError("delete_by_prefix needs a non-empty prefix")
        deleted = 0
        for query in queries.DELETE_BY_PREFIX.values():
            while True:
                n = int(
                    self._write("delete_by_prefix", query, prefix=id_prefix, limit=batch_size)[0][
                        "n"
                    ]
                )
                deleted += n
                if n < batch_size:
                    break
        return deleted


class _Neo4jAdjacency:
    """walks.AdjacencyLoader backed by GraphStore's batched adjacency queries."""

    def __init__(self, store: GraphStore, board_cap: int) -> None:
        self._store = store
        self._board_cap = board_cap

    def boards_of_pins(self, pin_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        return self._store.board_ids(pin_ids)

    def pins_of_boards(self, board_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        return self._store.pin_ids_of_boards(board_ids, self._board_cap)
