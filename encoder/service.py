"""EncoderService: pin content in, versioned embeddings out; micro-batched, hot-swappable. No torch.

One service holds one live model version. Each request pins the version it started on and is
computed entirely by it (preprocessing parameters included), so every result names the version
that produced it. `swap()` loads the new version beside the old, routes new requests to it, lets
the old version's in-flight requests finish, then closes it: nothing is dropped. Holding two
versions for dual writes is the caller's business: run two services.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from encoder.batcher import MicroBatcher
from encoder.preprocess import ImagePreprocessor, ImageRejected, pin_text
from encoder.runtime import OnnxEncoder

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PinContent:
    title: str
    description: str
    image_bytes: bytes


@dataclass(frozen=True)
class PinEmbedding:
    """float32 [D] vectors from model `version`; heads that were not computed are None."""

    version: int
    image: np.ndarray | None = None
    text: np.ndarray | None = None
    pin: np.ndarray | None = None


@dataclass
class _PinItem:
    pixels: np.ndarray
    text: str


class _LoadedVersion:
    """One model version with its preprocessors and batchers, and a count of users."""

    def __init__(
        self,
        encoder: OnnxEncoder,
        max_batch: int,
        max_delay_ms: float,
        max_queue: int,
        batch_workers: int,
    ) -> None:
        self.encoder = encoder
        self.version = encoder.version
        self.image_pre = encoder.image_preprocessor()
        self.text_pre = encoder.text_preprocessor()
        name = f"encoder-v{self.version}"
        # One model pool for every kind of batch (pins, images, texts, whole pre-formed batches):
        # onnxruntime already spreads one batch over the cores, so batches take turns.
        self.model_pool = ThreadPoolExecutor(
            batch_workers, thread_name_prefix=f"encode-v{self.version}"
        )
        self.pins: MicroBatcher[_PinItem, PinEmbedding] = MicroBatcher(
            self._run_pins,
            max_batch,
            max_delay_ms,
            max_queue,
            batch_workers,
            self.model_pool,
            name=f"{name}-pin",
        )
        self.images: MicroBatcher[np.ndarray, PinEmbedding] = MicroBatcher(
            self._run_images,
            max_batch,
            max_delay_ms,
            max_queue,
            batch_workers,
            self.model_pool,
            name=f"{name}-image",
        )
        self.texts: MicroBatcher[str, PinEmbedding] = MicroBatcher(
            self._run_texts,
            max_batch,
            max_delay_ms,
            max_queue,
            batch_workers,
            self.model_pool,
            name=f"{name}-text",
        )
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def close(self) -> None:
        await self.idle.wait()
        await asyncio.gather(self.pins.close(), self.images.close(), self.texts.close())
        self.model_pool.shutdown(wait=False)

    # Batch functions: run in the batcher's worker thread.

    def _run_pins(self, items: list[_PinItem]) -> list[PinEmbedding]:
        pixels = np.stack([item.pixels for item in items])
        out = self.encode_arrays(pixels, [item.text for item in items])
        return [
            PinEmbedding(self.version, out["image"][i], out["text"][i], out["pin"][i])
            for i in range(len(items))
        ]

    def encode_arrays(self, pixels: np.ndarray, texts: list[str]) -> dict[str, np.ndarray]:
        ids, mask = self.text_pre.encode(texts)
        return self.encoder.encode_pins(pixels, ids, mask)

    def _run_images(self, items: list[np.ndarray]) -> list[PinEmbedding]:
        vectors = self.encoder.encode_images(np.stack(items))
        return [PinEmbedding(self.version, image=v) for v in vectors]

    def _run_texts(self, items: list[str]) -> list[PinEmbedding]:
        vectors = self.encoder.encode_texts(*self.text_pre.encode(items))
        return [PinEmbedding(self.version, text=v) for v in vectors]


class EncoderService:
    def __init__(
        self,
        encoder: OnnxEncoder,
        max_batch: int = 32,
        max_delay_ms: float = 10.0,
        max_queue: int = 1024,
        request_timeout_s: float | None = None,
        decode_threads: int = 2,
        provider: str = "auto",
        batch_workers: int = 1,
    ) -> None:
        """`decode_threads` decode images beside the model thread (Pillow releases the GIL);
        `batch_workers` > 1 keeps several batches in flight (GPU: overlap copies and compute)."""
        self._batching = (max_batch, max_delay_ms, max_queue, batch_workers)
        self._provider = provider
        self._timeout = request_timeout_s
        self._decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        self._current = _LoadedVersion(encoder, *self._batching)
        self._swap_lock = asyncio.Lock()
        log.info("encoder.service_ready", version=encoder.version, providers=encoder.providers)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        max_batch: int = 32,
        max_delay_ms: float = 10.0,
        max_queue: int = 1024,
        request_timeout_s: float | None = None,
        decode_threads: int = 2,
        provider: str = "auto",
        batch_workers: int = 1,
        intra_op_threads: int = 0,
    ) -> EncoderService:
        """`intra_op_threads`: onnxruntime threads per batch (0: its default, every core)."""
        encoder = OnnxEncoder.load(model_dir, provider=provider, intra_op_threads=intra_op_threads)
        return cls(
            encoder,
            max_batch,
            max_delay_ms,
            max_queue,
            request_timeout_s,
            decode_threads,
            provider,
            batch_workers,
        )

    @property
    def version(self) -> int:
        return self._current.version

    @property
    def dim(self) -> int:
        return self._current.encoder.dim

    # --- requests -----------------------------------------------------------------------

    async def embed(self, content: PinContent) -> PinEmbedding:
        """image, text and pin vectors; raises ImageRejected for an image we refuse."""
        slot = self._current
        slot.enter()
        try:
            loop = asyncio.get_running_loop()
            pixels = await loop.run_in_executor(
                self._decode_pool, slot.image_pre.load, content.image_bytes
            )
            item = _PinItem(pixels, pin_text(content.title, content.description))
            return await slot.pins.submit(item, timeout=self._timeout)
        finally:
            slot.leave()

    async def embed_many(
        self, contents: list[PinContent]
    ) -> list[PinEmbedding | ImageRejected | Exception]:
        """Per-item results in order: a rejected image is returned in its slot, not raised."""
        results = await asyncio.gather(*(self.embed(c) for c in contents), return_exceptions=True)
        out: list[PinEmbedding | ImageRejected | Exception] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            out.append(result)
        return out

    def image_preprocessor(self) -> ImagePreprocessor:
        """The current version's image preprocessing (picklable: decode pools may use it)."""
        return self._current.image_pre

    @property
    def preprocess_key(self) -> tuple[object, ...]:
        """Equal for two versions whose images decode to the same pixels (decode once)."""
        spec = self._current.encoder.manifest.preprocess
        return (
            spec.image_size,
            tuple(spec.mean),
            tuple(spec.std),
            spec.max_image_bytes,
            spec.max_image_pixels,
        )

    async def embed_pixels(
        self, pixels: np.ndarray, titles: list[str], descriptions: list[str]
    ) -> np.ndarray:
        """A whole pre-formed batch (the stream's): decoded pixels [B,3,S,S] and pin texts →
        pin vectors float32 [B,D], in one onnxruntime call on the model pool.

        The stream decodes with `image_preprocessor()` in its own pool and already batches, so
        it skips the per-item micro-batcher; the model pool keeps batches from overlapping.
        """
        slot = self._current
        slot.enter()
        try:
            texts = [pin_text(t, d) for t, d in zip(titles, descriptions, strict=True)]
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(slot.model_pool, slot.encode_arrays, pixels, texts)
            return np.asarray(out["pin"], dtype=np.float32)
        finally:
            slot.leave()

    async def embed_text(self, text: str) -> PinEmbedding:
        """Text query → `.text` vector (searches the same space as pins and images)."""
        slot = self._current
        slot.enter()
        try:
            return await slot.texts.submit(text, timeout=self._timeout)
        finally:
            slot.leave()

    async def embed_image(self, image_bytes: bytes) -> PinEmbedding:
        """Image query → `.image` vector; raises ImageRejected."""
        slot = self._current
        slot.enter()
        try:
            loop = asyncio.get_running_loop()
            pixels = await loop.run_in_executor(self._decode_pool, slot.image_pre.load, image_bytes)
            return await slot.images.submit(pixels, timeout=self._timeout)
        finally:
            slot.leave()

    # --- lifecycle ----------------------------------------------------------------------

    async def swap(self, model_dir: str | Path) -> int:
        """Hot swap: new requests go to the new version at once; old in-flight ones finish."""
        async with self._swap_lock:
            encoder = await asyncio.to_thread(OnnxEncoder.load, model_dir, self._provider)
            old, self._current = self._current, _LoadedVersion(encoder, *self._batching)
            log.info(
                "encoder.swapped", old=old.version, new=encoder.version, draining=old.in_flight
            )
            await old.close()
            return encoder.version

    async def close(self) -> None:
        await self._current.close()
        self._decode_pool.shutdown(wait=False)

    async def __aenter__(self) -> EncoderService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
