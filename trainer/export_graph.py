"""Dataset ⇄ graph: export the live graph (GraphStore pages) to the offline format for
retraining, and import a dataset into the graph for demos and tests.

Images stay where the content store keeps them: pins.jsonl carries each pin's image URI, so the
export is small and the trainer reads images through fsspec like any other dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from trainer.dataset import PinRecord, SaveRecord, write_dataset

if TYPE_CHECKING:
    from graph_store import GraphStore
    from trainer.dataset import Dataset

log = structlog.get_logger("trainer.export")


def export_graph(
    store: GraphStore, out_url: str | Path, id_prefix: str = "", page_size: int = 5000
) -> tuple[int, int]:
    """Dump every pin with content and every Pin–Board edge; returns (pins, saves) written.

    Pins without an image URI cannot be embedded and are skipped along with their edges.
    """
    exported: set[str] = set()

    def pins() -> Iterator[PinRecord]:
        for page in store.iter_pins(page_size, id_prefix=id_prefix):
            for node in page:
                if not node.image_uri:
                    continue
                exported.add(node.pin_id)
                yield PinRecord(
                    pin_id=node.pin_id,
                    title=node.title or "",
                    description=node.description or "",
                    image=node.image_uri,
                )

    def saves() -> Iterator[SaveRecord]:
        for page in store.iter_saves(page_size, id_prefix=id_prefix):
            for edge in page:
                if edge.pin_id not in exported:
                    continue
                first_at = getattr(edge, "first_at", None) or getattr(edge, "ts", None)
                yield SaveRecord(
                    pin_id=edge.pin_id,
                    board_id=edge.board_id,
                    user_id=getattr(edge, "user_id", None),
                    ts=first_at.timestamp() if isinstance(first_at, datetime) else None,
                )

    # write_dataset consumes pins() fully before saves(), so `exported` is complete in time.
    write_dataset(
        out_url,
        pins(),
        saves(),
        meta={"name": "graph-export", "exported_at": datetime.now(UTC).isoformat()},
    )
    from trainer.dataset import read_dataset

    ds = read_dataset(out_url)
    log.info("graph.exported", pins=len(ds.pins), saves=len(ds.saves), url=str(out_url))
    return len(ds.pins), len(ds.saves)


def import_dataset(
    store: GraphStore, dataset: Dataset, id_prefix: str = "", batch_size: int = 1000
) -> tuple[int, int]:
    """The reverse direction, for demos and tests: load a dataset into the graph store.

    Ids get `id_prefix` (pins, boards, users) so runs on a shared server stay separable; image
    paths become absolute URIs so any process can re-read them.
    """
    from graph_store import PinNode, Save

    def uri(pin: PinRecord) -> str:
        url: str = dataset.image_url(pin)
        return url if "://" in url else Path(url).resolve().as_uri()

    pins = [
        PinNode(
            pin_id=id_prefix + p.pin_id,
            title=p.title,
            description=p.description,
            image_uri=uri(p),
            created_at=datetime.now(UTC),
        )
        for p in dataset.pins
    ]
    now = datetime.now(UTC).timestamp()
    saves = [
        Save(
            pin_id=id_prefix + s.pin_id,
            board_id=id_prefix + s.board_id,
            user_id=id_prefix + (s.user_id or "anonymous"),
            ts=datetime.fromtimestamp(s.ts if s.ts is not None else now, UTC),
        )
        for s in dataset.saves
    ]
    for start in range(0, len(pins), batch_size):
        store.upsert_pins(pins[start : start + batch_size])
    for start in range(0, len(saves), batch_size):
        store.add_saves(saves[start : start + batch_size])
    log.info("graph.imported", pins=len(pins), saves=len(saves), prefix=id_prefix or None)
    return len(pins), len(saves)
