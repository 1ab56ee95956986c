"""ContentStore: where images that arrived inline are kept, so every pin has a re-readable URI."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import fsspec


def content_root(state_dir: str | Path) -> str:
    """Where a deployment's inline images live: `<state_dir>/content`, absolute. Always a
    `file://` root of the fetch policy (worker, backfill and API read it the same way)."""
    return str((Path(state_dir) / "content").resolve())


class ContentStore:
    """Content-addressed image store (any fsspec URL) for images that arrived inline.

    Paths are `<root>/<sha256[:2]>/<sha256>`: writing the same image twice (a replay) is a no-op,
    and the returned URI is stable, so Neo4j's `image_uri` stays valid across replays.
    """

    def __init__(self, root_url: str) -> None:
        self._fs, root = fsspec.core.url_to_fs(root_url)
        self._root = root.rstrip("/")
        self._fs.makedirs(self._root, exist_ok=True)

    def uri_for(self, digest: str) -> str:
        path = f"{self._root}/{digest[:2]}/{digest}"
        return str(self._fs.unstrip_protocol(path))

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = f"{self._root}/{digest[:2]}/{digest}"
        if not self._fs.exists(path):
            self._fs.makedirs(f"{self._root}/{digest[:2]}", exist_ok=True)
            tmp = f"{path}.tmp-{id(data)}"
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, path)
        return self.uri_for(digest)

    async def put_many(self, images: Sequence[bytes]) -> list[str]:
        return list(await asyncio.gather(*(asyncio.to_thread(self.put, data) for data in images)))
