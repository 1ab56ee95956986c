"""Where a pin's time and CPU go, stage by stage: the worker's always-on profile.

Two cheap sources, both exported as Prometheus counters so a benchmark (or an operator) reads
them as deltas over any window:

- `stage(name, pins)` around each step of the embed-and-write path: wall seconds of the step,
  the pin-seconds spent waiting in it (wall × pins in the batch: what the step adds to a pin's
  latency), and — for steps that run synchronous code in one thread — that thread's CPU time.
- `label_threads()` copies Python thread names onto the OS threads (`/proc/self/task/*/comm`),
  so per-thread CPU can be read from outside the process and grouped by role: the event loop,
  decode, encode, the store-call threads, and the native pools (onnxruntime, grpc) that inherit
  the name of the thread that created them. Linux only; elsewhere it does nothing.

Counters cost a dict lookup and an add per batch, not per pin, so they stay on in production.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import Counter

STAGE_SECONDS = Counter(
    "pinclip_stage_seconds", "Wall seconds spent in each stage of the new-pin path.", ["stage"]
)
STAGE_PIN_SECONDS = Counter(
    "pinclip_stage_pin_seconds",
    "Pin-seconds spent in each stage (wall × pins in the batch): the stage's latency share.",
    ["stage"],
)
STAGE_CPU_SECONDS = Counter(
    "pinclip_stage_cpu_seconds",
    "CPU seconds of the thread that ran each stage's synchronous work.",
    ["stage"],
)
STAGE_PINS = Counter("pinclip_stage_pins", "Pins that went through each stage.", ["stage"])


def record(stage_name: str, pins: int, wall_s: float, cpu_s: float = 0.0) -> None:
    """Account one batch's pass through a stage (for steps timed elsewhere, e.g. in a pool)."""
    STAGE_SECONDS.labels(stage_name).inc(max(0.0, wall_s))
    STAGE_PIN_SECONDS.labels(stage_name).inc(max(0.0, wall_s) * pins)
    STAGE_PINS.labels(stage_name).inc(pins)
    if cpu_s > 0:
        STAGE_CPU_SECONDS.labels(stage_name).inc(cpu_s)


def record_wait(stage_name: str, pins: int, pin_seconds: float) -> None:
    """Account time pins spent waiting before a stage (e.g. in Kafka before the poll)."""
    STAGE_PIN_SECONDS.labels(stage_name).inc(max(0.0, pin_seconds))
    STAGE_PINS.labels(stage_name).inc(pins)


@contextlib.contextmanager
def stage(stage_name: str, pins: int, cpu: bool = True) -> Iterator[None]:
    """Time a step; `cpu=False` where the body awaits (the thread's CPU is not the step's)."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        cpu_s = time.thread_time() - cpu0 if cpu else 0.0
        record(stage_name, pins, time.perf_counter() - wall0, cpu_s)


_TASKS = Path("/proc/self/task")


def label_threads() -> int:
    """Give each Python thread's OS thread its Python name (first 15 bytes); returns how many.

    Native threads (onnxruntime's pool, grpc's) are not Python threads and keep their own
    names: onnxruntime's inherit the name of the thread that created the session.
    """
    if not _TASKS.is_dir():
        return 0
    labelled = 0
    for thread in threading.enumerate():
        native = thread.native_id
        if native is None:
            continue
        name = "loop" if thread is threading.main_thread() else thread.name
        service = getattr(thread, "service", None)  # mode's service threads (Faust's consumer)
        if service is not None and name.startswith("Thread-"):
            name = type(service).__name__
        with contextlib.suppress(OSError):
            (_TASKS / str(native) / "comm").write_text(name[:15])
            labelled += 1
    return labelled


@contextlib.contextmanager
def thread_named(name: str) -> Iterator[None]:
    """Run a block under an OS thread name, so native threads it starts inherit the name."""
    path = _TASKS / str(threading.get_native_id()) / "comm"
    try:
        before = path.read_text().strip()
        path.write_text(name[:15])
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.write_text(before)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
