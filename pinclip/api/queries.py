"""The queries, free of HTTP: resolve the live version once, then use only that version.

Rule (kept from the first API, tested across a hot swap): each query reads the alias once, and
its query vector (encoder of version N), its search (collection of version N) and its answer's
`model_version` all name that same N. An alias switch in the middle of a query changes nothing
for it: collection N stays for the grace period after a switch.

Hits come with their content from the search itself: the Milvus row carries the pin's title,
image URI and boards (the snapshot written with the vector — what `board=` and
`exclude_same_board` filter on), so a page is one Milvus round trip; the measurement that chose
Milvus fields over a batched Neo4j read is in docs/BENCHMARKS.md (bench/api.py). Only a
collection created before rows carried content sends hits to the graph for their titles. The
pin page (`GET /pins/{id}`) shows the current boards, from Neo4j.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from pinclip.api.config import ApiConfig
from pinclip.api.models import (
    Consistency,
    ImageAnswer,
    PinDetail,
    PinHit,
    RecentAnswer,
    RecentPin,
    SimilarAnswer,
    TextAnswer,
)
from pinclip.api.observability import ApiMetrics
from pinclip.api.ports import ApiDeps
from pinclip.api.problems import ApiProblem
from vector_store import filters

log = structlog.get_logger(__name__)

T = TypeVar("T")
UrlFor = Callable[[str], str]


async def call_store(function: Callable[..., T], *args: Any) -> T:
    """Stores are synchronous clients: run them off the event loop."""
    return await asyncio.to_thread(function, *args)


class QueryService:
    def __init__(
        self,
        deps: ApiDeps,
        config: ApiConfig,
        metrics: ApiMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deps = deps
        self.config = config
        self.metrics = metrics
        self._clock = clock
        self._live: tuple[int | None, float] = (None, 0.0)
        self._refresh: asyncio.Task[None] | None = None

    # --- versions and encoders -------------------------------------------------------------

    async def live_version(self) -> int:
        """The version this query uses throughout. Younger than live_version_ttl_s: as known.
        Up to twice that: as known, re-read in the background — under steady traffic no query
        waits for the alias' round trips. Older (or a TTL of 0): read now, so the first query
        after a quiet spell sees a swap at once."""
        cached, read_at = self._live
        ttl = self.config.live_version_ttl_s
        age = self._clock() - read_at
        if cached is not None and age < 2 * ttl:
            if age >= ttl and (self._refresh is None or self._refresh.done()):
                self._refresh = asyncio.create_task(self._refresh_live_version())
            return cached
        return await self._read_live_version()

    async def _read_live_version(self) -> int:
        version = await call_store(self.deps.vectors.live_version)
        if version is None:
            raise ApiProblem("no-live-version", "no model version is live yet (no alias)")
        self._live = (int(version), self._clock())
        self.metrics.live_version.set(version)
        return int(version)

    async def _refresh_live_version(self) -> None:
        try:
            await self._read_live_version()
        except Exception as exc:  # the next query past the TTL tries again; queries go on
            log.warning("api_live_version_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    def forget_live_version(self) -> None:
        """After a query found its version gone (dropped after a swap): read the alias again."""
        self._live = (None, 0.0)

    async def _embed(self, kind: str, version: int, payload: Any) -> Any:
        from pinclip.api.encoders import ModelUnavailable

        try:
            encoder = await self.deps.encoders.get(version)
        except ModelUnavailable as exc:
            raise ApiProblem("model-unavailable", str(exc), headers={"Retry-After": "5"}) from exc
        with self.metrics.timed(self.metrics.encode_seconds, kind=kind):
            if kind == "text":
                embedding = await encoder.embed_text(payload)
            else:
                embedding = await encoder.embed_image(payload)
        if embedding.version != version:  # the rule itself: never search N with an N' vector
            raise RuntimeError(f"encoder answered v{embedding.version} for a v{version} query")
        return embedding.text if kind == "text" else embedding.image

    async def _search(
        self,
        query: str,
        vector: Any,
        k: int,
        expression: str | None,
        version: int,
        level: Consistency,
    ) -> list[Any]:
        with self.metrics.timed(self.metrics.search_seconds, query=query, consistency=level):
            hits = await call_store(
                self.deps.vectors.search, vector, k, expression or None, version, level
            )
        if any(hit.model_version != version for hit in hits):
            raise RuntimeError(f"a v{version} search returned hits of another version")
        return hits

    # --- content ----------------------------------------------------------------------------

    async def _content(self, pin_ids: Sequence[str]) -> dict[str, tuple[Any, list[str]]]:
        """Content and current boards from the graph (pin page, image, recent strip)."""
        if not pin_ids:
            return {}
        with self.metrics.timed(self.metrics.hydrate_seconds):
            return await call_store(self.deps.graph.pins_with_boards, list(pin_ids))

    async def _hits(
        self, hits: Sequence[Any], url_for: UrlFor, own_boards: list[str] | None = None
    ) -> list[PinHit]:
        """Hits as the API shows them, from the rows' own fields. Rows of a collection created
        before they carried content have no title: those titles come from one graph read."""
        missing = [h.pin_id for h in hits if h.title is None]
        content = await self._content(missing)
        titles = {pin_id: getattr(node, "title", None) for pin_id, (node, _) in content.items()}
        return [
            PinHit(
                pin_id=hit.pin_id,
                score=round(float(hit.score), 6),
                title=hit.title if hit.title is not None else titles.get(hit.pin_id),
                image_url=url_for(hit.pin_id),
                boards=sorted(hit.board_ids),
                shared_boards=None
                if own_boards is None
                else sorted(set(hit.board_ids) & set(own_boards)),
            )
            for hit in hits
        ]

    # --- queries ----------------------------------------------------------------------------

    async def similar(
        self, pin_id: str, k: int, board: str | None, exclude_same_board: bool, url_for: UrlFor
    ) -> SimilarAnswer:
        version = await self.live_version()
        level = self.config.consistency_similar
        with self.metrics.timed(self.metrics.search_seconds, query="pin_vector", consistency=level):
            rows = await call_store(self.deps.vectors.get, [pin_id], version, level)
        if not rows and level != "Strong":  # written a moment ago: read your writes
            rows = await call_store(self.deps.vectors.get, [pin_id], version, "Strong")
        if not rows:
            raise ApiProblem("pin-not-found", f"pin {pin_id!r} is not in v{version}")
        # Boards on both sides are the rows' snapshots: the filter, `boards` and `shared_boards`
        # all agree, and the answer is two Milvus round trips (this row, then the search).
        own = rows[0]
        own_boards = sorted(own.board_ids)
        expression = filters.all_of(
            filters.pins_not_in([pin_id]),
            filters.on_any_board([board]) if board is not None else None,
            f"not ({filters.on_any_board(own_boards)})"
            if exclude_same_board and own_boards
            else None,
        )
        hits = await self._search("similar", own.pin, k, expression, version, level)
        results = await self._hits(hits, url_for, own_boards)
        if exclude_same_board:  # the server filtered on the same snapshot: a guard, no more
            results = [r for r in results if not r.shared_boards]
        return SimilarAnswer(
            pin_id=pin_id,
            board=board,
            exclude_same_board=exclude_same_board,
            model_version=version,
            consistency=level,
            k=k,
            results=results[:k],
        )

    async def _by_query(
        self, kind: str, payload: Any, k: int, board: str | None, url_for: UrlFor
    ) -> tuple[int, Consistency, list[PinHit]]:
        version = await self.live_version()
        level = self.config.consistency_search
        vector = await self._embed(kind, version, payload)
        expression = filters.on_any_board([board]) if board is not None else None
        hits = await self._search(kind, vector, k, expression, version, level)
        return version, level, await self._hits(hits, url_for)

    async def by_text(self, text: str, k: int, board: str | None, url_for: UrlFor) -> TextAnswer:
        version, level, results = await self._by_query("text", text, k, board, url_for)
        return TextAnswer(
            query=text, model_version=version, consistency=level, k=k, results=results
        )

    async def by_image(
        self, image: bytes, k: int, board: str | None, url_for: UrlFor
    ) -> ImageAnswer:
        version, level, results = await self._by_query("image", image, k, board, url_for)
        return ImageAnswer(
            image_bytes=len(image), model_version=version, consistency=level, k=k, results=results
        )

    async def pin(self, pin_id: str, url_for: UrlFor) -> PinDetail:
        version = await self.live_version()
        level = self.config.consistency_lookup
        rows, content = await asyncio.gather(
            call_store(self.deps.vectors.get, [pin_id], version, level),
            self._content([pin_id]),
        )
        node, boards = content.get(pin_id, (None, []))
        has_content = node is not None and not node.pending
        if not rows and not has_content:
            raise ApiProblem("pin-not-found", f"no pin {pin_id!r}")
        return PinDetail(
            pin_id=pin_id,
            title=node.title if has_content else None,
            description=node.description if has_content else None,
            boards=boards,
            image_url=url_for(pin_id),
            created_at=node.created_at if has_content else (rows[0].created_at if rows else None),
            embedded_at=node.embedded_at if node is not None else None,
            model_version=version,
            embedded=bool(rows),
            consistency=level,
        )

    async def image_uri(self, pin_id: str) -> str:
        content = await self._content([pin_id])
        node, _ = content.get(pin_id, (None, []))
        if node is None or node.pending:
            raise ApiProblem("pin-not-found", f"no pin {pin_id!r}")
        if not node.image_uri:
            raise ApiProblem("image-not-found", f"pin {pin_id!r} has no image")
        return str(node.image_uri)

    async def recent(self, limit: int, url_for: UrlFor) -> RecentAnswer:
        feed = self.deps.recent
        version = await call_store(self.deps.vectors.live_version)
        if feed is None:
            return RecentAnswer(model_version=version, source="disabled", pins=[])
        events = feed.latest(limit)
        content = await self._content([e.pin_id for e in events])
        pins = [
            RecentPin(
                pin_id=e.pin_id,
                title=getattr(content.get(e.pin_id, (None, []))[0], "title", None),
                image_url=url_for(e.pin_id),
                boards=content.get(e.pin_id, (None, []))[1],
                model_versions=list(e.model_versions),
                embedded_at=e.embedded_at,
                latency_ms=round(float(e.latency_ms), 1),
            )
            for e in events
        ]
        return RecentAnswer(model_version=version, source=feed.describe(), pins=pins)
