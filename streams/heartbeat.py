"""The worker's periodic progress line: what it did since the last line, and where it stands.

`progress_fields` is pure (tested directly); streams/app.py calls it from one timer and logs
the result as `worker_progress`. An idle, caught-up worker logs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    """Counters since start (PinWorker.counts), total consumer lag, and the served versions."""

    at_s: float  # monotonic clock
    counts: Mapping[str, int]
    lag: int
    model_versions: Sequence[int]


def progress_fields(previous: Snapshot | None, current: Snapshot) -> dict[str, Any] | None:
    """Fields of the next progress line, or None when nothing happened and nothing waits."""
    before = previous.counts if previous is not None else {}
    delta = {key: value - before.get(key, 0) for key, value in current.counts.items()}
    if not any(delta.values()) and current.lag == 0:
        return None
    elapsed = current.at_s - previous.at_s if previous is not None else 0.0
    embedded = delta.get("embedded", 0)
    return {
        "embedded": current.counts.get("embedded", 0),
        "embedded_per_s": round(embedded / elapsed, 1) if elapsed > 0 else None,
        "dead_lettered": current.counts.get("dead", 0),
        "repins": current.counts.get("repins_in", 0),
        "lag": current.lag,
        "model_versions": list(current.model_versions),
    }
