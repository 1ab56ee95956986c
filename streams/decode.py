"""Image bytes → model pixels, off the event loop, in a pool sized to the cores.

Decoding a pin image (Pillow decode, EXIF orientation, resize, crop, normalise) is the largest
CPU cost of the stream after the model itself. Two pools, chosen by `workers`:

- `processes=True`: a process pool (spawned, so no thread of the worker is forked) — decoding
  never contends with the event loop for the GIL; costs a copy of the pixels back.
- `processes=False`: threads in the worker process — no copy; Pillow and numpy release the GIL
  for most of the work, so this is the cheaper choice when the event loop is not busy.

A batch is split into one chunk per worker (one round trip each, not one per image). Every
rejection comes back in its slot as a `DeterministicError("decode", reason)` (the image alone is
dead-lettered); anything else is a bug and propagates.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from streams import stages
from streams.errors import DeterministicError


class ImageDecoder(Protocol):
    """encoder.preprocess.ImagePreprocessor: picklable, `.load(bytes)` raises ImageRejected."""

    def load(self, data: bytes) -> np.ndarray: ...


Decoded = np.ndarray | DeterministicError


def decode_chunk(pre: ImageDecoder, images: Sequence[bytes]) -> tuple[list[Any], float]:
    """Decode a chunk (runs in a pool worker); returns per-image results and the CPU it took.

    A rejection is returned as (reason, detail) — plain data that pickles across processes.
    """
    from encoder.preprocess import ImageRejected

    started = time.thread_time()
    out: list[Any] = []
    for data in images:
        try:
            out.append(pre.load(data))
        except ImageRejected as exc:
            out.append((exc.reason, exc.detail))
        except (MemoryError, OverflowError) as exc:  # a hostile size Pillow did not catch
            out.append(("too_many_pixels", type(exc).__name__))
    return out, time.thread_time() - started


def _name_process() -> None:
    stages.label_threads()
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write("decode")
    except OSError:
        pass


class Decoder:
    """A decode pool; `await decode(pre, images)` keeps the order of `images`."""

    def __init__(self, workers: int = 0, processes: bool = False) -> None:
        self.workers = workers or stages.cpu_count()
        self.processes = processes
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.processes:
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_name_process,
                )
            else:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        return self._pool

    async def decode(self, pre: ImageDecoder, images: Sequence[bytes]) -> list[Decoded]:
        if not images:
            return []
        loop = asyncio.get_running_loop()
        size = -(-len(images) // self.workers)
        chunks = [images[i : i + size] for i in range(0, len(images), size)]
        started = time.perf_counter()
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._executor(), decode_chunk, pre, c) for c in chunks)
        )
        results: list[Decoded] = []
        for decoded, _ in parts:
            for item in decoded:
                if isinstance(item, tuple):
                    results.append(DeterministicError("decode", item[0], item[1]))
                else:
                    results.append(item)
        cpu = sum(cpu_s for _, cpu_s in parts)
        stages.record("decode", len(images), time.perf_counter() - started, cpu)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
