"""Training progress: a tqdm bar on a terminal, structured log lines everywhere else.

tqdm draws with carriage returns; in a log file or a container's log stream that becomes one
unreadable line of frames. So the bar appears only when stderr is a terminal, and otherwise a
`train.progress` event (step, loss, samples/s, eta) is logged every `every_s` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import structlog

log = structlog.get_logger("trainer")


class Progress:
    def __init__(self, total: int, initial: int, enabled: bool, every_s: float = 30.0) -> None:
        self.total = total
        self.enabled = enabled
        self.every_s = every_s
        self.started = self.last_log = time.perf_counter()
        self.seen = 0
        self.samples_per_s = 0.0
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, file=sys.stderr, dynamic_ncols=True)

    def update(self, step: int, record: dict[str, float], samples: int) -> None:
        now = time.perf_counter()
        self.seen += samples
        self.samples_per_s = self.seen / max(1e-9, now - self.started)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{record['loss']:.3f}", samples_s=f"{self.samples_per_s:.0f}"
            )
        elif self.enabled and (now - self.last_log >= self.every_s or step == self.total):
            self.last_log = now
            steps_per_s = self.seen / max(1, samples) / max(1e-9, now - self.started)
            log.info(
                "train.progress",
                step=step,
                total=self.total,
                loss=round(record["loss"], 4),
                samples_s=round(self.samples_per_s, 1),
                eta_s=round((self.total - step) / max(1e-9, steps_per_s)),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
