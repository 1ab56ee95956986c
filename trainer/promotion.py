"""The promotion rule of the retrain loop, I/O-free so it is tested on plain numbers.

A candidate replaces the live model only if its cold-start Recall@10 does not regress: the one
metric that measures what this system exists for (new pins with no edges). Both numbers should
come from the same split of the same graph snapshot; when the live model cannot be re-scored,
its stored eval.json is the fallback and the decision says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

METRIC = "cold_start_recall@10"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    candidate: float
    live: float | None


def decide_promotion(
    candidate: float, live: float | None, tolerance: float = 0.0, live_source: str = "same split"
) -> PromotionDecision:
    """Promote when there is no live model, or candidate >= live - tolerance.

    `tolerance` is an absolute drop in Recall@10 (0.02 = two points), not a fraction of the
    live value. The reason states the rule with its numbers, so a log line explains itself.
    """
    if candidate != candidate:  # NaN: a broken evaluation never promotes
        return PromotionDecision(False, "candidate metric is NaN", candidate, live)
    if live is None:
        return PromotionDecision(True, "no live model", candidate, None)
    promote = candidate + tolerance >= live
    verdict, sign = ("promote", ">=") if promote else ("keep live", "<")
    reason = (
        f"{verdict}: candidate {METRIC} {candidate:.4f} {sign} live {live:.4f}"
        f" - tolerance {tolerance:.4f} (absolute) = {live - tolerance:.4f}; live {live_source}"
    )
    return PromotionDecision(promote, reason, candidate, live)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'6h' -> 21600.0; accepts s, m, h, d or plain seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (try 30m, 6h, 1d)")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds
