"""VectorStore: the thin pymilvus adapter over versioned pin collections and the live alias.

The same code runs on milvus-lite (uri is a local path) and on a Milvus server (uri http://...);
every backend difference listed in SERVICES.md is absorbed here or in `milvus_io`, and every
rule (naming, validation, switch/drop policy, result shaping) lives in an I/O-free module.
Calls are synchronous; async callers run them in an executor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from vector_store import filters
from vector_store.errors import (
    DropRefused,
    NoLiveVersion,
    SwitchRefused,
    UnknownVersion,
    VectorStoreError,
)
from vector_store.index import IndexConfig
from vector_store.lifecycle import FillCheck, drop_problems, droppable_versions, switch_problems
from vector_store.milvus_io import MilvusIO
from vector_store.naming import VersionNaming
from vector_store.records import (
    CONTENT_FIELDS,
    PinVector,
    SearchHit,
    StoredPin,
    Vector,
    batches,
    from_row,
    normalise,
    shape_hits,
    to_row,
)

log = structlog.get_logger(__name__)

_RETIRED_AT = "pinclip.retired_at"
_LIVE_SINCE = "pinclip.live_since"
_WRITER = "pinclip.writer."  # + a stream worker's id: it writes every new pin into this version
_ID_CHUNK = 1000  # ids per `pin_id in [...]` expression
CONSISTENCY_LEVELS = frozenset({"Strong", "Bounded", "Session", "Eventually"})
# A collection's fields never change, so they are read once per collection; the alias may move
# to a collection of another schema, so what it has is read again after this long.
_ALIAS_FIELDS_TTL_S = 5.0


class PinNotFound(VectorStoreError, KeyError):
    """search_by_pin was asked about a pin the searched version does not hold."""


@dataclass(frozen=True)
class AliasSwitch:
    """Outcome of `switch_alias`: where the alias pointed before and now."""

    previous: int | None
    current: int
    switched_at: datetime


class VectorStore:
    """Versioned pin collections (`<prefix><N>`) behind one alias; see docs/vector_store.md.

    `consistency` is the level every read uses. "Strong" (default) makes a write visible to the
    next read — what the freshness metric and replay checks rely on; "Bounded"/"Eventually" are
    faster but a just-written pin may be missing for a moment.
    """

    def __init__(
        self,
        uri: str,
        token: str = "",
        alias: str = VersionNaming.alias,
        dim: int = 256,
        consistency: str = "Strong",
        *,
        prefix: str = VersionNaming.prefix,
        index: IndexConfig | None = None,
        batch_size: int = 1000,
        max_boards: int = 256,
        grace: timedelta = timedelta(hours=1),
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        _level(consistency)
        self.naming = VersionNaming(prefix=prefix, alias=alias)
        self.dim = dim
        self.index = index or IndexConfig()
        self.batch_size = batch_size
        self.max_boards = max_boards
        self.grace = grace
        self._clock = clock
        self._io = MilvusIO(uri, token=token, consistency=consistency, timeout_s=timeout_s)
        self._fields: dict[str, tuple[tuple[str, ...], float]] = {}  # content fields by target

    @property
    def backend(self) -> str:
        """ "lite" or "server": for logs and metrics labels."""
        return self._io.backend

    @property
    def consistency(self) -> str:
        return self._io.consistency

    def close(self) -> None:
        self._io.close()

    # --- versions and the alias ----------------------------------------------------------------

    def ensure_version(self, version: int) -> str:
        """Create (idempotently) and load the collection of `version`; returns its name."""
        name = self.naming.collection(version)
        created = self._io.create_collection_if_absent(
            name, self.dim, self.max_boards, self.index, {_LIVE_SINCE: "", _RETIRED_AT: ""}
        )
        if not created:  # someone else's: its index may still be on the way
            self._io.ensure_index(name, self.index)
        self._io.load(name)
        if created:
            self._fields[name] = (CONTENT_FIELDS, time.monotonic())
            log.info("vector_version_created", collection=name, backend=self.backend)
        return name

    def versions(self) -> list[int]:
        return self.naming.versions_among(self._io.list_collections())

    def live_version(self) -> int | None:
        target = self._io.alias_target(self.naming.alias)
        return None if target is None else self.naming.version_of(target)

    def count(self, version: int) -> int:
        return self._io.count(self._existing(version))

    def verify(self, version: int, expected_count: int) -> FillCheck:
        """Measure a filled version before switching: row count (at least `expected_count`,
        since live writes keep arriving during a backfill), loaded, indexed."""
        name = self._existing(version)
        return FillCheck(
            version=version,
            count=self._io.count(name),
            expected_count=expected_count,
            loaded=self._io.is_loaded(name),
            indexed=self._io.has_vector_index(name),
        )

    def switch_alias(self, version: int, expected_count: int | None = None) -> AliasSwitch:
        """Point the alias at `version` in one server call (create_alias, else alter_alias).

        Call it only once the fill is done; with `expected_count` the fill is verified first and
        `SwitchRefused` is raised (alias untouched) when it falls short.
        """
        name = self._existing(version)
        self._io.load(name)  # readers must never hit a released collection through the alias
        live = self.live_version()
        check = self.verify(version, expected_count) if expected_count is not None else None
        count = check.count if check else self._io.count(name)
        problems = switch_problems(version, live, check, count)
        if problems:
            raise SwitchRefused("; ".join(problems))
        now = self._clock()
        if live != version:
            # Marked before the move: a crash between the move and the retirement mark below
            # leaves the old version with live_since but no retired_at, which drop_expired
            # repairs by starting its grace period then (instead of dropping it at once).
            self._io.set_properties(name, {_LIVE_SINCE: now.isoformat(), _RETIRED_AT: ""})
            self._io.point_alias(self.naming.alias, name, alias_exists=live is not None)
            if live is not None and self._io.has_collection(self.naming.collection(live)):
                self._io.set_properties(
                    self.naming.collection(live), {_RETIRED_AT: now.isoformat()}
                )
        log.info("vector_alias_switched", alias=self.naming.alias, previous=live, current=version)
        return AliasSwitch(previous=live, current=version, switched_at=now)

    def mark_writer(self, version: int, writer: str) -> None:
        """Record that the stream worker `writer` writes every new pin it handles into
        `version` from now on (a collection property, one per worker: concurrent marks never
        overwrite each other). A backfill waits for these (streams.writers)."""
        if not writer or len(writer) > 200:
            raise ValueError(f"writer id must be 1..200 characters: {writer!r}")
        name = self._existing(version)
        self._io.set_properties(name, {_WRITER + writer: self._clock().isoformat()})

    def writers(self, version: int) -> set[str]:
        """The workers that marked `version` (see `mark_writer`)."""
        properties = self._io.properties(self._existing(version))
        return {key[len(_WRITER) :] for key in properties if key.startswith(_WRITER)}

    def drop_version(self, version: int, force: bool = False) -> None:
        """Drop a version that is not live and whose grace period is over (`force` skips the
        grace period, never the live check). Dropping an absent version is a no-op."""
        name = self.naming.collection(version)
        if not self._io.has_collection(name):
            return
        live = self.live_version()
        grace = timedelta(0) if force else self.grace
        problems = drop_problems(version, live, self._retired_at(name), self._clock(), grace)
        if problems:
            raise DropRefused("; ".join(problems))
        self._io.drop_collection(name)
        self._fields.pop(name, None)
        log.info("vector_version_dropped", collection=name)

    def drop_expired(self) -> list[int]:
        """Drop every retired version past its grace period; versions newer than live are kept
        (a backfill may be filling them). Returns what was dropped."""
        versions = self.versions()
        live = self.live_version()
        now = self._clock()
        retired = {}
        for v in versions:
            name = self.naming.collection(v)
            properties = self._io.properties(name)
            if properties.get(_RETIRED_AT):
                retired[v] = datetime.fromisoformat(properties[_RETIRED_AT])
            elif properties.get(_LIVE_SINCE) and v != live:
                # Was live, but its retirement was never recorded (interrupted switch).
                self._io.set_properties(name, {_RETIRED_AT: now.isoformat()})
                retired[v] = now
        due = droppable_versions(versions, live, retired, now, self.grace)
        for version in due:
            self.drop_version(version)
        return due

    def purge(self) -> None:
        """Remove the alias and every version under this prefix — for teardown of tests and
        benchmarks on a shared server; never part of the serving path."""
        if self._io.alias_target(self.naming.alias) is not None:
            self._io.drop_alias(self.naming.alias)
        for version in self.versions():
            self._io.drop_collection(self.naming.collection(version))
        self._fields.clear()

    # --- rows --------------------------------------------------------------------------------

    def upsert(self, version: int, pins: Sequence[PinVector]) -> int:
        """Insert-or-replace by pin_id, in batches; replaying the same pins changes nothing."""
        name = self._existing(version)
        content = set(CONTENT_FIELDS) <= set(self._content_fields(name))
        rows = []
        for pin in pins:
            if pin.model_version != version:
                raise ValueError(
                    f"pin {pin.pin_id!r} is from model v{pin.model_version}, not v{version}"
                )
            rows.append(to_row(pin, self.dim, self.max_boards, content))
        for batch in batches(rows, self.batch_size):
            self._io.upsert(name, list(batch))
        return len(rows)

    def flush(self, version: int) -> None:
        """Seal what was written so the server builds the vector index over it; call at the end
        of a backfill, before `switch_alias`, so the new version serves from its index."""
        self._io.flush(self._existing(version))

    def index_progress(self, version: int) -> tuple[int, int]:
        """(indexed_rows, total_rows): rows not yet indexed are still searched, exactly but
        slowly, so this matters for latency, not correctness."""
        return self._io.index_progress(self._existing(version))

    def get(
        self, pin_ids: Iterable[str], version: int | None = None, consistency: str | None = None
    ) -> list[StoredPin]:
        """Stored rows for the ids that exist (missing ids are simply absent), content fields
        included. One round trip per 1,000 ids: no existence check first — a missing version
        is the server's own answer (`UnknownVersion`; `NoLiveVersion` through the alias)."""
        target = self.naming.alias if version is None else self.naming.collection(version)
        level = _level(consistency)
        found: list[StoredPin] = []
        with self._reading(target):
            fields = self._content_fields(target)
            for chunk in _chunks(list(dict.fromkeys(pin_ids)), _ID_CHUNK):
                rows = self._io.query(target, filters.pins_in(chunk), level, fields)
                found.extend(from_row(row) for row in rows)
        return found

    def delete(self, pin_ids: Iterable[str], version: int) -> None:
        """Delete from one version; idempotent. No count is returned: the 2.3.5 server reports
        a count for ids that never existed, so it cannot be trusted."""
        name = self._existing(version)
        for chunk in _chunks(list(dict.fromkeys(pin_ids)), _ID_CHUNK):
            self._io.delete(name, filters.pins_in(chunk))

    def delete_everywhere(self, pin_ids: Iterable[str]) -> None:
        """Delete from every version (a pin removed by its owner must vanish from all)."""
        ids = list(pin_ids)
        for version in self.versions():
            self.delete(ids, version)

    # --- search ------------------------------------------------------------------------------

    def search(
        self,
        vector: Sequence[float] | Vector,
        k: int = 10,
        filter: str | None = None,
        version: int | None = None,
        consistency: str | None = None,
    ) -> list[SearchHit]:
        """Top-k by inner product on normalised vectors; `version=None` goes through the alias,
        which the server resolves once per request, so one result list is one version.
        `consistency` overrides the store's level for this call (e.g. "Bounded" for a
        latency-bound query API; Strong costs ~400 ms per read on the 2.3.5 server)."""
        query = normalise(vector, self.dim)
        target = self.naming.alias if version is None else self.naming.collection(version)
        return self._search(target, query, k, filter, frozenset(), _level(consistency))

    def search_by_pin(
        self,
        pin_id: str,
        k: int = 10,
        filter: str | None = None,
        version: int | None = None,
        consistency: str | None = None,
    ) -> list[SearchHit]:
        """Neighbours of a stored pin, the pin itself excluded.

        The alias is resolved to one collection first, and both the vector lookup and the search
        use that collection: a switch in between cannot pair a v1 vector with v2 neighbours.
        """
        if version is None:
            version = self.live_version()
            if version is None:
                raise NoLiveVersion(f"alias {self.naming.alias!r} does not exist yet")
        name = self.naming.collection(version)
        level = _level(consistency)
        rows = self._io.query(name, filters.pins_in([pin_id]), level)
        if not rows:
            raise PinNotFound(f"pin {pin_id!r} is not in v{version}")
        own = from_row(rows[0])
        combined = filters.all_of(filters.pins_not_in([pin_id]), filter)
        return self._search(name, own.pin, k, combined, frozenset({pin_id}), level)

    def _search(
        self,
        target: str,
        query: Vector,
        k: int,
        filter: str | None,
        exclude: frozenset[str],
        consistency: str | None,
    ) -> list[SearchHit]:
        """One round trip: the hits come back with their row's boards and content fields."""
        if k < 1:
            raise ValueError("k must be at least 1")
        params = self.index.search_params(k)
        with self._reading(target):
            fields = self._content_fields(target)
            raw = self._io.search(
                target, query.tolist(), k, filter or "", params, consistency, fields
            )
        return shape_hits(raw, k, exclude)

    # --- helpers -----------------------------------------------------------------------------

    def _existing(self, version: int) -> str:
        name = self.naming.collection(version)
        if not self._io.has_collection(name):
            raise UnknownVersion(f"collection {name!r} does not exist")
        return name

    @contextmanager
    def _reading(self, target: str) -> Iterator[None]:
        """A read through the alias before it exists is `NoLiveVersion`, not a missing
        collection."""
        try:
            yield
        except UnknownVersion as missing:
            if target == self.naming.alias:
                raise NoLiveVersion(f"alias {target!r} does not exist yet") from missing
            raise

    def _content_fields(self, target: str) -> tuple[str, ...]:
        cached = self._fields.get(target)
        now = time.monotonic()
        if cached is not None and (
            target != self.naming.alias or now - cached[1] < _ALIAS_FIELDS_TTL_S
        ):
            return cached[0]
        have = self._io.content_fields(target)
        fields = tuple(f for f in CONTENT_FIELDS if f in have)
        self._fields[target] = (fields, now)
        return fields

    def _retired_at(self, name: str) -> datetime | None:
        value = self._io.properties(name).get(_RETIRED_AT, "")
        return datetime.fromisoformat(value) if value else None


def _level(consistency: str | None) -> str | None:
    if consistency is not None and consistency not in CONSISTENCY_LEVELS:
        raise ValueError(f"consistency must be one of {sorted(CONSISTENCY_LEVELS)}")
    return consistency


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
