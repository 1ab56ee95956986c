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
    """Promote when there is no live model, or candidate >= live - tolerance."""
    if candidate != candidate:  # NaN: a broken evaluation never promotes
        return PromotionDecision(False, "candidate metric is NaN", candidate, live)
    if live is None:
        return PromotionDecision(True, "no live model", candidate, None)
    if candidate + tolerance >= live:
        return PromotionDecision(
            True, f"{METRIC} {candidate:.4f} >= live {live:.4f} ({live_source})", candidate, live
        )
    return PromotionDecision(
        False, f"{METRIC} {candidate:.4f} < live {live:.4f} ({live_source})", candidate, live
    )


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
