"""Training batches: anchor pins plus one sampled graph neighbor each.

Neighbor sampling, image decoding and tokenisation all happen in ``__getitem__``/``collate``,
i.e. inside DataLoader worker processes that prefetch ahead of the training step; the graph is
an in-memory snapshot (``PinBoardGraph``), so no store is on the critical path.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import structlog
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from encoder.preprocess import ImagePreprocessor, ImageRejected, TextPreprocessor
from trainer.dataset import Dataset, PinRecord
from trainer.losses import share_board_mask
from trainer.neighbors import CoBoardSampler, PinBoardGraph, RandomWalkSampler


def load_or_blank(pre: ImagePreprocessor, data: bytes, pin_id: str = "") -> np.ndarray:
    """The serving preprocessor's array, or a white image for one it refuses (too thin, not
    decodable...): such a pin still trains and is scored on its text instead of failing the
    whole run; each refusal is logged."""
    try:
        return pre.load(data)
    except ImageRejected as exc:
        structlog.get_logger("trainer").warning("image.rejected", pin_id=pin_id, reason=exc.reason)
        return pre.to_array(Image.new("RGB", (pre.size, pre.size), (255, 255, 255)))


def tensors_to(batch: object, device: torch.device) -> dict[str, object]:
    """A batch dataclass's fields, tensors moved to `device` (the rest as they are)."""
    return {
        k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
        for k, v in batch.__dict__.items()
    }


@dataclass
class PinBatch:
    """Tensors for one step; neighbor fields are None when neighbor alignment is off."""

    pixel_values: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    title_ids: Tensor
    title_mask: Tensor
    description_ids: Tensor
    description_mask: Tensor
    has_description: Tensor
    neighbor_pixel_values: Tensor | None = None
    neighbor_input_ids: Tensor | None = None
    neighbor_attention_mask: Tensor | None = None
    has_neighbor: Tensor | None = None
    share_board: Tensor | None = None

    def to(self, device: torch.device) -> PinBatch:
        return PinBatch(**tensors_to(self, device))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.pixel_values.shape[0])


class PinPairDataset(TorchDataset[tuple[int, int | None]]):
    """Item i = (anchor index, neighbor index or None). Images are held as encoded bytes."""

    def __init__(
        self,
        pins: Sequence[PinRecord],
        image_bytes: Sequence[bytes],
        graph: PinBoardGraph,
        image_pre: ImagePreprocessor,
        text_pre: TextPreprocessor,
        sampler: str = "coboard",
        with_neighbors: bool = True,
        seed: int = 0,
    ) -> None:
        self.pins = list(pins)
        self.image_bytes = list(image_bytes)
        self.index = {p.pin_id: i for i, p in enumerate(self.pins)}
        self.graph = graph
        self.image_pre = image_pre
        self.text_pre = text_pre
        self.with_neighbors = with_neighbors
        self.seed = seed
        self.epoch = 0
        self.neighbor_sampler: CoBoardSampler | RandomWalkSampler = (
            RandomWalkSampler(graph) if sampler == "walk" else CoBoardSampler(graph)
        )
        if sampler not in ("coboard", "walk"):
            raise ValueError(f"unknown neighbor sampler {sampler!r}")

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, pin_ids: Sequence[str], graph: PinBoardGraph, **kwargs: object
    ) -> PinPairDataset:
        by_id = {p.pin_id: p for p in dataset.pins}
        pins = [by_id[p] for p in pin_ids]
        images = [dataset.read_image_bytes(p) for p in pins]
        return cls(pins, images, graph, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.pins)

    def __getitem__(self, i: int) -> tuple[int, int | None]:
        if not self.with_neighbors:
            return i, None
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
        other = self.neighbor_sampler.sample(self.pins[i].pin_id, rng)
        return i, (None if other is None else self.index.get(other))

    def pixels(self, indices: Sequence[int]) -> Tensor:
        arrays = [
            load_or_blank(self.image_pre, self.image_bytes[i], self.pins[i].pin_id) for i in indices
        ]
        return torch.from_numpy(np.stack(arrays))

    def collate(self, items: Sequence[tuple[int, int | None]]) -> PinBatch:
        anchors = [a for a, _ in items]
        pins = [self.pins[a] for a in anchors]
        ids, mask = self.text_pre.encode_pins(
            [p.title for p in pins], [p.description for p in pins]
        )
        # Titles and descriptions share one padding so the model encodes them in one call.
        n = len(pins)
        td_ids, td_mask = self.text_pre.encode(
            [p.title or p.description for p in pins] + [p.description or p.title for p in pins]
        )
        t_ids, d_ids, t_mask, d_mask = td_ids[:n], td_ids[n:], td_mask[:n], td_mask[n:]
        batch = PinBatch(
            pixel_values=self.pixels(anchors),
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            title_ids=torch.from_numpy(np.ascontiguousarray(t_ids)),
            title_mask=torch.from_numpy(np.ascontiguousarray(t_mask)),
            description_ids=torch.from_numpy(np.ascontiguousarray(d_ids)),
            description_mask=torch.from_numpy(np.ascontiguousarray(d_mask)),
            has_description=torch.tensor([bool(p.description.strip()) for p in pins]),
        )
        if not self.with_neighbors:
            return batch
        # Anchors without a neighbor borrow themselves as a placeholder and are masked out.
        nbrs = [a if n is None else n for a, n in items]
        n_pins = [self.pins[n] for n in nbrs]
        n_ids, n_mask = self.text_pre.encode_pins(
            [p.title for p in n_pins], [p.description for p in n_pins]
        )
        batch.neighbor_pixel_values = self.pixels(nbrs)
        batch.neighbor_input_ids = torch.from_numpy(n_ids)
        batch.neighbor_attention_mask = torch.from_numpy(n_mask)
        batch.has_neighbor = torch.tensor([n is not None for _, n in items])
        batch.share_board = share_board_mask(
            [self.graph.board_set(p.pin_id) for p in pins],
            [self.graph.board_set(p.pin_id) for p in n_pins],
        )
        return batch


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded per-epoch permutation, sharded by rank, that can start mid-epoch (resume)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch, self.start_batch = epoch, start_batch
        self.rank, self.world_size = rank, world_size

    def batches_per_epoch(self) -> int:
        return (self.size // self.world_size) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        mine = order[self.rank :: self.world_size]
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield mine[b * self.batch_size : (b + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start_batch)
