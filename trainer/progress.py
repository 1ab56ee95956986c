"""Progress bars that stay readable when the output is not a terminal.

tqdm redraws its bar with carriage returns; piped into a file, `tee` or a CI log, every redraw
lands on the same line and a long run becomes one giant line. `progress_bar` is tqdm on a
terminal and, anywhere else, whole lines: the first update at once, then at most one line per
`interval_s`, and always the final state when the bar closes.

Used by training, the backfill and `pinclip stream-dataset` (tqdm is a base dependency).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

PIPED_INTERVAL_S = 10.0


class ThrottledLines:
    """A write-only text stream that turns tqdm's redraws into at most one line per interval."""

    def __init__(
        self, out: IO[str], interval_s: float = PIPED_INTERVAL_S, clock: Any = time.monotonic
    ) -> None:
        self.out, self.interval_s, self.clock = out, interval_s, clock
        self._last_at: float | None = None
        self._pending = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self._pending = line
            now = self.clock()
            if self._last_at is None or now - self._last_at >= self.interval_s:
                self._emit(now)
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def finish(self) -> None:
        """Write the newest state if the throttle held it back."""
        if self._pending:
            self._emit(self.clock())

    def _emit(self, now: float) -> None:
        self.out.write(self._pending + "\n")
        self.out.flush()
        self._pending, self._last_at = "", now


class _LineTqdm(tqdm):  # type: ignore[type-arg]
    """tqdm writing through ThrottledLines; `close` writes the final line."""

    def __init__(self, *args: Any, lines: ThrottledLines, **kwargs: Any) -> None:
        self._lines = lines
        super().__init__(*args, file=lines, **kwargs)

    def close(self) -> None:
        super().close()
        self._lines.finish()


def progress_bar(
    total: int | None = None,
    *,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool = True,
    out: IO[str] | None = None,
    interval_s: float = PIPED_INTERVAL_S,
    **kwargs: Any,
) -> tqdm:  # type: ignore[type-arg]
    """A tqdm bar on `out` (default stderr): redrawn in place on a terminal, plain lines else."""
    stream = out or sys.stderr
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "disable": not enabled}
    options.update(kwargs)
    if stream.isatty():
        return tqdm(file=stream, dynamic_ncols=True, **options)
    options.setdefault("ncols", 100)
    return _LineTqdm(lines=ThrottledLines(stream, interval_s), ascii=True, **options)
