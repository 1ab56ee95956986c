"""Bounded retry with exponential backoff around whole write batches.

The Neo4j driver already retries transient errors inside `execute_write`, but only for a short
window. During a longer outage (server restarting, network gone) this outer loop makes callers
wait instead of dropping the batch, and after its bound raises `GraphStoreUnavailable` so the
caller (a Kafka consumer) can stop committing offsets instead of silently losing writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class GraphStoreUnavailable(RuntimeError):
    """Neo4j stayed unreachable for the whole retry budget; the operation was not applied."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` tries in all; waits grow from `initial_delay_s` by `multiplier` up to a cap."""

    attempts: int = 6
    initial_delay_s: float = 0.5
    multiplier: float = 2.0
    max_delay_s: float = 10.0
    jitter: float = 0.1  # +- fraction, so many workers do not reconnect in lockstep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.initial_delay_s < 0 or self.max_delay_s < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")

    def delays(self, rng: random.Random | None = None) -> list[float]:
        """The waits between consecutive attempts (one fewer than attempts)."""
        waits = []
        delay = self.initial_delay_s
        for _ in range(self.attempts - 1):
            wait = min(delay, self.max_delay_s)
            if self.jitter and rng is not None:
                wait *= 1 + rng.uniform(-self.jitter, self.jitter)
            waits.append(wait)
            delay *= self.multiplier
        return waits


def call_with_retry(
    operation: Callable[[], T],
    *,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `operation`; on a `retry_on` error wait and retry, `policy.attempts` tries in all."""
    waits = policy.delays(rng if rng is not None else random.Random())
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except retry_on as error:
            if attempt == policy.attempts:
                raise GraphStoreUnavailable(
                    f"{what}: Neo4j unavailable after {policy.attempts} attempts: {error}"
                ) from error
            wait = waits[attempt - 1]
            log.warning(
                "graph_store.retry",
                what=what,
                attempt=attempt,
                wait_s=round(wait, 3),
                error=str(error),
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
