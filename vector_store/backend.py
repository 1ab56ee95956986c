"""The vector backend's contract, in slices: what each caller may rely on, and nothing else.

`VectorBackend` is the whole contract `VectorStore` keeps (mypy checks it, below); each caller
takes the slice it needs, so a test or another backend only has to provide that slice:
- `VectorWrites`: the stream (streams.ports.VectorSink) — versions, alias, upserts, writer marks;
- `VectorVersions`: backfill and retrain — the stream's slice plus row counts and the marks;
- `VectorReads`: the query API (pinclip.api.ports.VectorReader) — live version, get, search.
Every method either succeeds or raises a `vector_store.errors.VectorStoreError` (unavailable:
transient; the rest deterministic) or `ValueError` for a refused row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vector_store.records import PinVector, SearchHit, StoredPin, Vector

if TYPE_CHECKING:
    from vector_store.lifecycle import FillCheck
    from vector_store.store import AliasSwitch, VectorStore


@runtime_checkable
class VectorWrites(Protocol):
    """One collection per model version behind one alias (blocking calls)."""

    def ensure_version(self, version: int) -> str: ...
    def live_version(self) -> int | None: ...
    def switch_alias(self, version: int, expected_count: int | None = None) -> AliasSwitch: ...
    def upsert(self, version: int, pins: Sequence[PinVector]) -> int: ...
    def mark_writer(self, version: int, writer: str) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class VectorVersions(VectorWrites, Protocol):
    """A backfill's view: the stream's slice, plus how full a version is and who writes it."""

    def count(self, version: int) -> int: ...
    def verify(self, version: int, expected_count: int) -> FillCheck: ...
    def writers(self, version: int) -> set[str]: ...


@runtime_checkable
class VectorReads(Protocol):
    """The query side: through the alias unless a version is given."""

    @property
    def backend(self) -> str: ...
    def live_version(self) -> int | None: ...
    def search(
        self,
        vector: Sequence[float] | Vector,
        k: int = 10,
        filter: str | None = None,
        version: int | None = None,
        consistency: str | None = None,
    ) -> list[SearchHit]: ...
    def get(
        self, pin_ids: Iterable[str], version: int | None = None, consistency: str | None = None
    ) -> list[StoredPin]: ...


class VectorBackend(VectorVersions, VectorReads, Protocol):
    """Everything above: what `VectorStore` is."""


if TYPE_CHECKING:  # mypy proves the store keeps the whole contract
    _store_is_a_backend: type[VectorBackend] = VectorStore
