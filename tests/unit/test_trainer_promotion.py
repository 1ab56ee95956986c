"""The retrain loop's promotion rule and schedule parsing."""

from __future__ import annotations

import pytest

from trainer.promotion import decide_promotion, parse_duration


def test_first_model_is_always_promoted() -> None:
    decision = decide_promotion(0.12, None)
    assert decision.promote and decision.reason == "no live model"


def test_no_regression_promotes_and_regression_rejects() -> None:
    assert decide_promotion(0.30, 0.30).promote  # equal is not a regression
    assert decide_promotion(0.31, 0.30).promote
    rejected = decide_promotion(0.29, 0.30)
    assert not rejected.promote and "0.2900 < live 0.3000" in rejected.reason


def test_the_reason_states_the_rule_with_the_tolerance() -> None:
    let_through = decide_promotion(0.3583, 0.3850, tolerance=0.03, live_source="same split")
    assert let_through.promote
    assert let_through.reason == (
        "promote: candidate cold_start_recall@10 0.3583 >= live 0.3850 - tolerance 0.0300"
        " (absolute) = 0.3550; live same split"
    )
    kept = decide_promotion(0.3583, 0.3850, tolerance=0.02, live_source="same split")
    assert not kept.promote and kept.reason.startswith("keep live: candidate")
    assert "< live 0.3850 - tolerance 0.0200 (absolute) = 0.3650" in kept.reason


def test_tolerance_allows_a_small_drop_only() -> None:
    assert decide_promotion(0.295, 0.30, tolerance=0.01).promote
    assert not decide_promotion(0.28, 0.30, tolerance=0.01).promote


def test_nan_candidate_never_promotes() -> None:
    assert not decide_promotion(float("nan"), None).promote


@pytest.mark.parametrize(
    ("text", "seconds"), [("6h", 21600.0), ("30m", 1800.0), ("1d", 86400.0), ("90", 90.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6x", "-1h", "0s", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
