"""graph_store owns the Pin–Board graph in Neo4j.

It keeps pins (with the content needed to re-embed them), boards and save edges current with
idempotent batched writes, answers neighbor queries for neighbor-alignment training (co-board
ranking and PinSage-style random walks) and exports training snapshots page by page.
`graph_store.walks` is pure Python and walks any in-memory Pin–Board graph; the Neo4j driver is
imported only when `GraphStore` is first used, so the in-memory path never loads it.
It imports nothing else of this project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph_store.models import Neighbor, PinNode, Save, SaveEdge
from graph_store.retry import GraphStoreUnavailable, RetryPolicy
from graph_store.walks import BipartiteGraph, WalkParams, walk_neighbors

if TYPE_CHECKING:
    from graph_store.store import GraphStore

__all__ = [
    "BipartiteGraph",
    "GraphStore",
    "GraphStoreUnavailable",
    "Neighbor",
    "PinNode",
    "RetryPolicy",
    "Save",
    "SaveEdge",
    "WalkParams",
    "walk_neighbors",
]


def __getattr__(name: str) -> Any:
    if name == "GraphStore":
        from graph_store.store import GraphStore

        return GraphStore
    raise AttributeError(f"module 'graph_store' has no attribute {name!r}")
