"""A small real world for the API tests, the browser test and schemathesis: pins with rendered
images in a content directory, their nodes and boards in the shared Neo4j (under a unique
prefix), and their embeddings from two tiny exported model versions in Milvus (v1 live)."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pinclip.api import ApiConfig, ApiDeps, VersionedEncoders, create_api
from pinclip.api.images import ContentImageSource
from streams.content import FetchPolicy

COLOURS = {
    "red": (220, 30, 40),
    "blue": (30, 60, 220),
    "green": (40, 170, 60),
    "yellow": (240, 210, 40),
}
SHAPES = ("circle", "square", "stripes")


def render(colour: tuple[int, int, int], shape: str, size: int = 96) -> bytes:
    image = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((12, 12, size - 12, size - 12), fill=colour)
    elif shape == "square":
        draw.rectangle((16, 16, size - 16, size - 16), fill=colour)
    else:
        for x in range(0, size, 16):
            draw.rectangle((x, 0, x + 7, size), fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class PinSpec:
    pin_id: str
    title: str
    boards: tuple[str, ...]
    image: bytes
    colour: str = ""
    shape: str = ""

    @property
    def board(self) -> str:
        return self.boards[0]


@dataclass
class World:
    tag: str
    prefix: str
    registry: Path
    pins: list[PinSpec]
    vectors: Any
    graph: Any
    image_paths: dict[str, Path]
    content_dir: Path
    embeddings: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    milvus_uri: str = ""

    def by_id(self, pin_id: str) -> PinSpec:
        return next(p for p in self.pins if p.pin_id == pin_id)

    def deps(self, **overrides: Any) -> ApiDeps:
        values: dict[str, Any] = {
            "vectors": self.vectors,
            "graph": self.graph,
            "encoders": VersionedEncoders(str(self.registry), self.registry / "cache", "cpu"),
            "images": ContentImageSource(FetchPolicy(file_roots=(str(self.content_dir),))),
            "recent": None,
        }
        return ApiDeps(**{**values, **overrides})

    def api(self, config: ApiConfig | None = None, **deps: Any) -> Any:
        return create_api(self.deps(**deps), config or ApiConfig())

    def brute_force(self, version: int, query: np.ndarray, k: int) -> list[str]:
        """Exact top-k by cosine over the version's stored embeddings."""
        table = self.embeddings[version]
        q = query / np.linalg.norm(query)
        scores = {pid: float(v @ q / np.linalg.norm(v)) for pid, v in table.items()}
        return sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]


def pin_specs(prefix: str, count: int = 24) -> list[PinSpec]:
    specs = []
    colours = list(COLOURS)
    for i in range(count):
        colour = colours[i % len(colours)]
        shape = SHAPES[(i // len(colours)) % len(SHAPES)]
        boards = (f"{prefix}board-{colour}",)
        if i % 3 == 0:  # every third pin is also on a shared board
            boards += (f"{prefix}board-favourites",)
        specs.append(
            PinSpec(
                pin_id=f"{prefix}pin-{i:03d}",
                title=f"{colour} {shape} number {i}",
                boards=boards,
                image=render(COLOURS[colour], shape),
                colour=colour,
                shape=shape,
            )
        )
    return specs


def dataset_specs(data_dir: Path, prefix: str, count: int) -> list[PinSpec]:
    """Pins of a dataset made by the demo's generator (titles, rendered images, boards)."""
    from trainer.dataset import read_dataset

    dataset = read_dataset(data_dir)
    boards = dataset.boards_of()
    specs = []
    for pin in dataset.pins:
        if pin.pin_id in boards and len(specs) < count:
            specs.append(
                PinSpec(
                    pin_id=prefix + pin.pin_id,
                    title=pin.title,
                    boards=tuple(prefix + b for b in sorted(boards[pin.pin_id])),
                    image=dataset.read_image_bytes(pin),
                )
            )
    return specs


async def _embed_all(registry: Path, version: int, pins: list[PinSpec]) -> dict[str, np.ndarray]:
    from encoder.service import EncoderService, PinContent

    service = EncoderService.load(registry / f"v{version}", provider="cpu")
    try:
        out = {}
        for pin in pins:
            emb = await service.embed(PinContent(pin.title, "", pin.image))
            out[pin.pin_id] = np.asarray(emb.pin, dtype=np.float32)
        return out
    finally:
        await service.close()


def build_world(
    root: Path,
    milvus_uri: str,
    neo4j: Any,
    export_tiny_model: Callable[..., int],
    count: int = 24,
    dataset: Path | None = None,
) -> World:
    from graph_store import GraphStore, PinNode, Save
    from vector_store import PinVector, VectorStore

    tag = "api" + uuid.uuid4().hex[:8]
    prefix = f"{tag}-"
    registry = root / "registry"
    dim = export_tiny_model(registry, 1)
    export_tiny_model(registry, 2)
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    pins = dataset_specs(dataset, prefix, count) if dataset else pin_specs(prefix, count)
    paths = {}
    for pin in pins:
        path = content / f"{pin.pin_id}.png"
        path.write_bytes(pin.image)
        paths[pin.pin_id] = path
    graph = GraphStore(neo4j.uri, neo4j.user, neo4j.password, neo4j.database)
    graph.ensure_schema()
    now = datetime.now(UTC)
    graph.upsert_pins(
        [
            PinNode(
                pin.pin_id,
                pin.title,
                f"a {pin.shape}",
                paths[pin.pin_id].resolve().as_uri(),
                now,
                f"{prefix}user",
                embedded_at=now,
            )
            for pin in pins
        ]
    )
    graph.add_saves([Save(p.pin_id, b, f"{prefix}user", now) for p in pins for b in p.boards])
    vectors = VectorStore(milvus_uri, alias=f"{tag}_pins", dim=dim, prefix=f"{tag}_v")
    world = World(tag, prefix, registry, pins, vectors, graph, paths, content.resolve())
    world.milvus_uri = milvus_uri
    for version in (1, 2):
        world.embeddings[version] = asyncio.run(_embed_all(registry, version, pins))
        vectors.ensure_version(version)
        vectors.upsert(
            version,
            [
                PinVector(
                    p.pin_id,
                    world.embeddings[version][p.pin_id],
                    version,
                    now,
                    p.boards,
                    title=p.title,
                    image_uri=paths[p.pin_id].resolve().as_uri(),
                )
                for p in pins
            ],
        )
        vectors.flush(version)
    vectors.switch_alias(1)
    return world


def destroy_world(world: World) -> None:
    try:
        world.vectors.purge()
    finally:
        world.vectors.close()
        world.graph.delete_by_prefix(world.prefix)
        world.graph.close()


def create_legacy_collection(milvus_uri: str, name: str, dim: int) -> None:
    """A collection as the first release created them: no `title` / `image_uri` fields, the
    same index and metric."""
    from pymilvus import MilvusClient

    from vector_store.milvus_io import pin_schema

    client = MilvusClient(uri=milvus_uri)
    try:
        index = MilvusClient.prepare_index_params()
        index.add_index(
            "pin", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200}
        )
        client.create_collection(
            name,
            schema=pin_schema(dim, 256, content=False),
            index_params=index,
            consistency_level="Strong",
            properties={"pinclip.live_since": "", "pinclip.retired_at": ""},
        )
    finally:
        client.close()
