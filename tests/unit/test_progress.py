"""Progress bars on a pipe: whole lines, throttled, with the final state — never one giant
line of carriage-return redraws."""

from __future__ import annotations

import io

from trainer.progress import ThrottledLines, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_redraws_become_at_most_one_line_per_interval_plus_the_last() -> None:
    out, clock = io.StringIO(), FakeClock()
    lines = ThrottledLines(out, interval_s=10.0, clock=clock)
    for step in range(1, 101):
        clock.now = step * 0.5  # 50 s of redraws, one every half second
        lines.write(f"\rtrain {step}/100")
    lines.finish()
    written = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert written[0] == "train 1/100" and written[-1] == "train 100/100"
    assert 5 <= len(written) <= 7  # 0 s, 10 s, ... 50 s (+ the final state)


def test_a_piped_bar_writes_separate_lines_ending_with_the_total() -> None:
    out = io.StringIO()  # not a terminal
    bar = progress_bar(5, desc="backfill v2", unit="pin", out=out, interval_s=0.0)
    for _ in range(5):
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("backfill v2") for line in lines)
    assert "5/5" in lines[-1]


def test_a_disabled_bar_writes_nothing() -> None:
    out = io.StringIO()
    bar = progress_bar(3, out=out, enabled=False)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""
