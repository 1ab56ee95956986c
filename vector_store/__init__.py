"""vector_store: pin embeddings in Milvus, one collection per model version behind one alias.

Owns: the collection schema (`<prefix><N>`, default `pins_v<N>`), the live alias (default
`pins`) and its atomic switch, the grace-period drop of retired versions, idempotent batched
upserts, deletes, gets, and filtered top-k search by vector or by pin. The same code runs on
milvus-lite (a local path) and a Milvus server (http://...). Imports nothing else of ours.
"""

from vector_store.errors import (
    DropRefused,
    LiteDirectoryLocked,
    NoLiveVersion,
    SwitchRefused,
    UnknownVersion,
    VectorStoreError,
    VectorStoreUnavailable,
)
from vector_store.index import IndexConfig
from vector_store.lifecycle import FillCheck
from vector_store.records import PinVector, SearchHit, StoredPin
from vector_store.store import AliasSwitch, PinNotFound, VectorStore

__all__ = [
    "AliasSwitch",
    "DropRefused",
    "FillCheck",
    "IndexConfig",
    "LiteDirectoryLocked",
    "NoLiveVersion",
    "PinNotFound",
    "PinVector",
    "SearchHit",
    "StoredPin",
    "SwitchRefused",
    "UnknownVersion",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreUnavailable",
]
