"""The retrain schedule survives a failed round and keeps its period start-to-start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinclip import retrain


def test_failed_round_is_counted_and_the_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []

    def fake_round(*_: Any, **__: Any) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("neo4j went away")

    monkeypatch.setattr(retrain, "retrain_once", fake_round)
    failed_before = retrain.ROUNDS.labels("failed")._value.get()
    sleeps: list[float] = []
    retrain.retrain_forever(
        deps=None,  # type: ignore[arg-type]
        train_template=None,
        work_dir=tmp_path,
        every_s=3600.0,
        sleep=sleeps.append,
        rounds=3,
    )
    assert calls == [0, 1, 2]
    assert retrain.ROUNDS.labels("failed")._value.get() == failed_before + 1
    assert len(sleeps) == 2 and all(3500.0 < s <= 3600.0 for s in sleeps)
