"""The only module that calls pymilvus: one method per server operation, backend quirks hidden.

Differences absorbed here (milvus-lite 3.2.2 vs Milvus server 2.3.5, see docs/vector_store.md):
- hit id key: `hit["pin_id"]` on lite, `hit["id"]` on the server; `hit.id` works on both.
- output fields: always named explicitly (lite returns all fields by default, the server none).
- delete result: ids on lite, `{"delete_count": n}` on the server; neither is returned upward.
- released collections after a reopen: "not loaded" errors trigger one load and a retry.
- missing collection / alias: codes and messages differ; both become `UnknownVersion`.
- connection failures become `VectorStoreUnavailable`, every other failure `VectorStoreError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pymilvus import DataType, MilvusClient

from vector_store.errors import (
    LiteDirectoryLocked,
    UnknownVersion,
    VectorStoreError,
    VectorStoreUnavailable,
    is_unavailable,
)
from vector_store.index import METRIC, IndexConfig
from vector_store.records import (
    CONTENT_FIELDS,
    MAX_BOARD_ID_LENGTH,
    MAX_IMAGE_URI_BYTES,
    MAX_PIN_ID_LENGTH,
    MAX_TITLE_BYTES,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
ROW_FIELDS = ("pin_id", "pin", "model_version", "created_at", "board_ids", "is_ad")
HIT_FIELDS = ("model_version", "board_ids")  # + CONTENT_FIELDS where the collection has them
_NOT_LOADED_CODE = 101
LITE_LOCK_FILE = "LOCK"  # milvus_lite.db.LOCK_FILENAME (3.2.2): flock-ed while a process has it
_MISSING_PHRASES = ("not exist", "not found", "can't find collection", "doesn't exist")
# "not found" that is not about the collection: a field, or an index not built yet
_MISSING_FIELD = re.compile(r"\bfield \S+ not (?:exist|found)|\bindex not found")


def backend_of(uri: str) -> str:
    """milvus-lite for a local path (pymilvus' own rule), a server for any URL scheme."""
    return "server" if "://" in uri else "lite"


def lite_directory_locked(path: str) -> bool:
    """True when another process holds milvus-lite's lock on the data directory `path` (False
    for a server URI)."""
    import fcntl
    import os

    if backend_of(path) != "lite":
        return False
    lock = os.path.join(path, LITE_LOCK_FILE)
    if not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _connect(uri: str, token: str, timeout_s: float) -> MilvusClient:
    """MilvusClient(uri); a lite directory another process holds becomes LiteDirectoryLocked
    (pymilvus only says "Open local milvus failed", after milvus-lite logged a traceback)."""
    try:
        return MilvusClient(uri=uri, token=token, timeout=timeout_s)
    except Exception:
        # Checked only after a failure: this process itself may hold the lock (milvus-lite
        # shares one embedded server per directory within a process), which is fine.
        if backend_of(uri) == "lite" and lite_directory_locked(uri):
            raise LiteDirectoryLocked(uri) from None
        raise


def pin_schema(dim: int, max_boards: int, content: bool = True) -> Any:
    """The collection schema of one model version. `content=False` is the schema collections
    were created with before rows carried the pin's title and image URI (readers and writers
    still handle such collections; tests build one with it)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pin_id", DataType.VARCHAR, is_primary=True, max_length=MAX_PIN_ID_LENGTH)
    schema.add_field("pin", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("model_version", DataType.INT64)
    schema.add_field("created_at", DataType.INT64)
    schema.add_field(
        "board_ids",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=max_boards,
        max_length=MAX_BOARD_ID_LENGTH,
    )
    schema.add_field("is_ad", DataType.BOOL)
    if content:
        schema.add_field("title", DataType.VARCHAR, max_length=MAX_TITLE_BYTES)
        schema.add_field("image_uri", DataType.VARCHAR, max_length=MAX_IMAGE_URI_BYTES)
    return schema


class MilvusIO:
    """A MilvusClient with error translation; holds no domain rules."""

    def __init__(self, uri: str, token: str, consistency: str, timeout_s: float) -> None:
        self.backend = backend_of(uri)
        self.consistency = consistency
        # Every call carries a deadline: without one pymilvus retries an unreachable server
        # ~75 times (minutes) before raising. Index-building calls get a longer one.
        self._timeout = timeout_s
        self._slow_timeout = max(timeout_s, 300.0)
        self._client: MilvusClient = self._call("connect", lambda: _connect(uri, token, timeout_s))

    def close(self) -> None:
        self._client.close()

    # --- error translation ----------------------------------------------------------------------

    def _call(self, operation: str, action: Callable[[], T], collection: str = "") -> T:
        try:
            return action()
        except VectorStoreError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("milvus_unavailable", operation=operation, error=str(exc))
                raise VectorStoreUnavailable(
                    f"Milvus unreachable during {operation}: {exc}"
                ) from exc
            text = str(exc).lower()
            missing = any(phrase in text for phrase in _MISSING_PHRASES)
            if collection and missing and not _MISSING_FIELD.search(text):
                raise UnknownVersion(f"{collection!r} does not exist ({operation})") from exc
            raise VectorStoreError(f"Milvus {operation} failed: {exc}") from exc

    def _read(self, operation: str, collection: str, action: Callable[[], T]) -> T:
        """A read that loads the collection once if the server says it is released."""
        try:
            return self._call(operation, action, collection)
        except VectorStoreError as exc:
            cause = exc.__cause__
            not_loaded = getattr(cause, "code", None) == _NOT_LOADED_CODE or "load" in str(cause)
            if isinstance(exc, (UnknownVersion, VectorStoreUnavailable)) or not not_loaded:
                raise
        self.load(collection)
        return self._call(operation, action, collection)

    # --- collections and aliases ------------------------------------------------------------------

    def has_collection(self, name: str) -> bool:
        return self._call(
            "has_collection", lambda: bool(self._client.has_collection(name, timeout=self._timeout))
        )

    def list_collections(self) -> list[str]:
        return self._call(
            "list_collections", lambda: list(self._client.list_collections(timeout=self._timeout))
        )

    def create_collection_if_absent(
        self, name: str, dim: int, max_boards: int, index: IndexConfig, properties: dict[str, str]
    ) -> bool:
        if self.has_collection(name):
            return False
        schema = pin_schema(dim, max_boards)
        index_params = _index_params(index)
        try:
            self._call(
                "create_collection",
                lambda: self._client.create_collection(
                    name,
                    schema=schema,
                    index_params=index_params,
                    consistency_level=self.consistency,
                    properties=properties,
                    timeout=self._slow_timeout,
                ),
            )
        except VectorStoreError:
            if self.has_collection(name):  # another writer created it first: same outcome
                return False
            raise
        return True

    def ensure_index(self, name: str, index: IndexConfig) -> None:
        """Build the vector index if the collection has none: another writer may have created
        the collection and not yet its index (create, index and load are three server calls),
        or died between them; loading before it exists fails. The same parameters, so a second
        build of it is a no-op on the server."""
        have = self._call("list_indexes", lambda: self._client.list_indexes(name), name)
        if not have:
            self._call(
                "create_index",
                lambda: self._client.create_index(
                    name, _index_params(index), timeout=self._slow_timeout
                ),
                name,
            )

    def content_fields(self, name: str) -> frozenset[str]:
        """Which of `CONTENT_FIELDS` the collection (or the alias's collection) has: none in
        collections created before rows carried the pin's content."""
        described = self._call(
            "describe_collection",
            lambda: self._client.describe_collection(name, timeout=self._timeout),
            name,
        )
        names = {str(f.get("name")) for f in described.get("fields", [])}
        return frozenset(f for f in CONTENT_FIELDS if f in names)

    def drop_collection(self, name: str) -> None:
        self._call(
            "drop_collection",
            lambda: self._client.drop_collection(name, timeout=self._slow_timeout),
            name,
        )

    def load(self, name: str) -> None:
        self._call(
            "load_collection",
            lambda: self._client.load_collection(name, timeout=self._slow_timeout),
            name,
        )

    def is_loaded(self, name: str) -> bool:
        state = self._call(
            "get_load_state", lambda: self._client.get_load_state(name, timeout=self._timeout), name
        )
        return str(state.get("state", "")).endswith("Loaded")

    def has_vector_index(self, name: str) -> bool:
        indexes = self._call(
            "list_indexes",
            lambda: self._client.list_indexes(name, field_name="pin", timeout=self._timeout),
            name,
        )
        return bool(indexes)

    def index_progress(self, name: str) -> tuple[int, int]:
        """(indexed_rows, total_rows) of the vector index; both backends build it in the
        background and search unindexed rows by brute force meanwhile."""
        described = self._call(
            "describe_index",
            lambda: self._client.describe_index(name, "pin", timeout=self._timeout),
            name,
        )
        return int(described.get("indexed_rows", 0)), int(described.get("total_rows", 0))

    def properties(self, name: str) -> dict[str, str]:
        described = self._call(
            "describe_collection",
            lambda: self._client.describe_collection(name, timeout=self._timeout),
            name,
        )
        return {str(k): str(v) for k, v in (described.get("properties") or {}).items()}

    def set_properties(self, name: str, properties: dict[str, str]) -> None:
        self._call(
            "alter_collection_properties",
            lambda: self._client.alter_collection_properties(
                name, properties=properties, timeout=self._timeout
            ),
            name,
        )

    def alias_target(self, alias: str) -> str | None:
        """The collection behind `alias`, or None when the alias does not exist.

        Listed first because describe_alias on a missing alias makes pymilvus log an ERROR.
        """
        listed = self._call(
            "list_aliases", lambda: self._client.list_aliases(timeout=self._timeout)
        )
        if alias not in listed.get("aliases", []):
            return None
        try:
            described = self._call(
                "describe_alias",
                lambda: self._client.describe_alias(alias, timeout=self._timeout),
                alias,
            )
        except UnknownVersion:
            return None
        target = described.get("collection_name")
        return str(target) if target else None

    def drop_alias(self, alias: str) -> None:
        self._call("drop_alias", lambda: self._client.drop_alias(alias, timeout=self._timeout))

    def point_alias(self, alias: str, collection: str, alias_exists: bool) -> None:
        """One server call moves the alias; a lost create race falls back to alter."""
        if alias_exists:
            self._call(
                "alter_alias",
                lambda: self._client.alter_alias(collection, alias, timeout=self._timeout),
            )
            return
        try:
            self._call(
                "create_alias",
                lambda: self._client.create_alias(collection, alias, timeout=self._timeout),
            )
        except VectorStoreUnavailable:
            raise
        except VectorStoreError:
            if self.alias_target(alias) is None:
                raise
            self._call(
                "alter_alias",
                lambda: self._client.alter_alias(collection, alias, timeout=self._timeout),
            )

    # --- rows ------------------------------------------------------------------------------------

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> None:
        self._call("upsert", lambda: self._client.upsert(name, rows, timeout=self._timeout), name)

    def flush(self, name: str) -> None:
        self._call("flush", lambda: self._client.flush(name, timeout=self._slow_timeout), name)

    def delete(self, name: str, expression: str) -> None:
        self._call(
            "delete",
            lambda: self._client.delete(name, filter=expression, timeout=self._timeout),
            name,
        )

    def query(
        self,
        target: str,
        expression: str,
        consistency: str | None = None,
        extra_fields: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        rows = self._read(
            "query",
            target,
            lambda: self._client.query(
                target,
                filter=expression,
                output_fields=[*ROW_FIELDS, *extra_fields],
                consistency_level=consistency or self.consistency,
                timeout=self._timeout,
            ),
        )
        return [dict(row) for row in rows]

    def count(self, name: str) -> int:
        """Always Strong: counts decide alias switches, so they must include every write."""
        rows = self._read(
            "count",
            name,
            lambda: self._client.query(
                name,
                filter="",
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=self._timeout,
            ),
        )
        return int(rows[0]["count(*)"])

    def search(
        self,
        target: str,
        vector: list[float],
        k: int,
        expression: str,
        search_params: dict[str, Any],
        consistency: str | None = None,
        extra_fields: tuple[str, ...] = (),
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """(pin_id, score, output fields) per hit, best first, for one query vector: the hit's
        model_version and board_ids, plus `extra_fields` — one round trip for the whole page."""
        results = self._read(
            "search",
            target,
            lambda: self._client.search(
                target,
                data=[vector],
                limit=k,
                filter=expression,
                anns_field="pin",
                output_fields=[*HIT_FIELDS, *extra_fields],
                search_params=search_params,
                consistency_level=consistency or self.consistency,
                timeout=self._timeout,
            ),
        )
        hits = results[0] if results else []
        return [(str(hit.id), float(hit.distance), dict(hit.get("entity", {}))) for hit in hits]


def _index_params(index: IndexConfig) -> Any:
    params = MilvusClient.prepare_index_params()
    params.add_index(
        field_name="pin", index_type=index.kind, metric_type=METRIC, params=index.build_params()
    )
    return params
