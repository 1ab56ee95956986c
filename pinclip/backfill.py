"""Backfill: re-embed every pin with model N into `pins_v<N>`, then move the alias.

Order of operations (the no-mixed-versions rule): the collection fills while queries keep
hitting the old version through the alias; only when the fill is verified does the alias move,
in one call; then the promotion is announced so workers drop the old model.

Resumable: after each batch the last pin_id written is checkpointed under the state dir;
`iter_pins` pages in pin_id order, so a restarted run skips everything up to it. Upserts are
idempotent, so re-doing the batch that was in flight at a crash is harmless.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from tqdm import tqdm

if TYPE_CHECKING:
    from streams.content import FetchPolicy

log = structlog.get_logger("backfill")


@dataclass
class BackfillState:
    version: int
    last_pin_id: str = ""
    embedded: int = 0
    failed: list[str] = field(default_factory=list)
    done: bool = False

    @classmethod
    def load(cls, path: Path, version: int) -> BackfillState:
        if not path.exists():
            return cls(version=version)
        data = json.loads(path.read_text())
        state = cls(**data)
        if state.version != version:
            raise ValueError(f"{path} belongs to version {state.version}, not {version}")
        return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


@dataclass
class BackfillReport:
    version: int
    embedded: int
    failed: int
    collection_count: int
    switched: bool
    resumed_from: str


def state_path(state_dir: Path, version: int, id_prefix: str = "") -> Path:
    suffix = f"-{id_prefix}" if id_prefix else ""
    return state_dir / "backfill" / f"v{version}{suffix}.json"


def _embed_batch(
    encoder: Any, pins: Sequence[Any], load_image: Callable[[str], bytes]
) -> tuple[list[Any], np.ndarray, list[str]]:
    """Pins whose image loads and decodes, their pin vectors, and the ids that failed."""
    from encoder.preprocess import ImageRejected
    from streams.content import ContentError

    image_pre, text_pre = encoder.image_preprocessor(), encoder.text_preprocessor()
    good, pixels, failed = [], [], []
    for pin in pins:
        try:
            pixels.append(image_pre.load(load_image(pin.image_uri)))
            good.append(pin)
        except (ContentError, ImageRejected, OSError) as exc:
            log.warning("backfill.image_failed", pin_id=pin.pin_id, error=str(exc))
            failed.append(pin.pin_id)
    if not good:
        return [], np.zeros((0, encoder.dim), np.float32), failed
    ids, mask = text_pre.encode_pins(
        [p.title or "" for p in good], [p.description or "" for p in good]
    )
    out = encoder.encode_pins(np.stack(pixels), ids, mask)
    return good, out["pin"], failed


def backfill(
    version: int,
    model_dir: Path,
    graph: Any,
    vectors: Any,
    state_dir: Path,
    *,
    batch_size: int = 64,
    page_size: int = 2000,
    switch: bool = True,
    id_prefix: str = "",
    provider: str = "auto",
    threads: int = 2,
    load_image: Callable[[str], bytes] | None = None,
    fetch_policy: FetchPolicy | None = None,
    on_switched: Callable[[int], None] | None = None,
    progress: bool = True,
) -> BackfillReport:
    """Fill pins_v<version> from the graph with the ONNX encoder in `model_dir`.

    `graph` is a graph_store.GraphStore and `vectors` a vector_store.VectorStore (typed loosely
    to keep this module importable without drivers). `on_switched` runs after the alias moved
    (e.g. announce the promotion and mark the registry's live version). Images are read through
    the shared fetch path under `fetch_policy` (a `streams.content.FetchPolicy`; the content
    store under `state_dir` is always readable) unless `load_image` is given.
    """
    from encoder.runtime import OnnxEncoder
    from streams.content import BlockingFetcher, FetchPolicy, content_root
    from vector_store import PinVector

    policy = (fetch_policy or FetchPolicy()).with_roots(content_root(state_dir))
    load: Callable[[str], bytes] = load_image or BlockingFetcher(policy)
    encoder = OnnxEncoder.load(model_dir, provider=provider, intra_op_threads=threads)
    if encoder.version != version:
        raise ValueError(f"{model_dir} holds version {encoder.version}, not {version}")
    vectors.ensure_version(version)
    spath = state_path(state_dir, version, id_prefix)
    state = BackfillState.load(spath, version)
    resumed_from = state.last_pin_id
    if state.done:
        log.info("backfill.already_done", version=version)
    else:
        log.info("backfill.start", version=version, resume_after=resumed_from or None)
        total = graph.count_pins(id_prefix=id_prefix)
        bar = tqdm(
            total=total, initial=state.embedded + len(state.failed), disable=not progress,
            file=sys.stderr, desc=f"backfill v{version}", unit="pin",
        )  # fmt: skip
        for page in graph.iter_pins(page_size, id_prefix=id_prefix):
            todo = [p for p in page if p.pin_id > state.last_pin_id]
            for start in range(0, len(todo), batch_size):
                chunk = [p for p in todo[start : start + batch_size] if p.image_uri]
                if not chunk:
                    continue
                good, vecs, failed = _embed_batch(encoder, chunk, load)
                boards = graph.board_ids([p.pin_id for p in good]) if good else {}
                now = datetime.now(UTC)
                rows = [
                    PinVector(
                        pin_id=p.pin_id,
                        pin=vecs[i],
                        model_version=version,
                        created_at=p.created_at or now,
                        board_ids=tuple(boards.get(p.pin_id, ())),
                        is_ad=bool(p.is_ad),
                    )
                    for i, p in enumerate(good)
                ]
                if rows:
                    vectors.upsert(version, rows)
                state.embedded += len(rows)
                state.failed.extend(failed)
                state.last_pin_id = chunk[-1].pin_id
                state.save(spath)
                bar.update(len(chunk))
        bar.close()
        state.done = True
        state.save(spath)
    if isinstance(load, BlockingFetcher):
        load.close()
    count = vectors.count(version)
    log.info(
        "backfill.filled", version=version, embedded=state.embedded, failed=len(state.failed),
        collection_count=count,
    )  # fmt: skip
    switched = False
    if switch:
        # Live writes keep arriving during the fill, so the collection may hold more.
        vectors.switch_alias(version, expected_count=state.embedded)
        switched = True
        log.info("backfill.alias_switched", version=version)
        if on_switched is not None:
            on_switched(version)
    return BackfillReport(version, state.embedded, len(state.failed), count, switched, resumed_from)
