"""graph_store owns the Pin–Board graph in Neo4j.

It keeps pins (with the content needed to re-embed them), boards and save edges current with
idempotent batched writes, answers neighbor queries for neighbor-alignment training (co-board
ranking and PinSage-style random walks) and exports training snapshots page by page.
`graph_store.walks` is pure Python (no driver) and can walk any in-memory Pin–Board graph.
It imports nothing else of this project.
"""

from graph_store.models import Neighbor, PinNode, Save, SaveEdge
from graph_store.retry import GraphStoreUnavailable, RetryPolicy
from graph_store.store import GraphStore
from graph_store.walks import BipartiteGraph, WalkParams, walk_neighbors

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
