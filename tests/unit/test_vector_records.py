from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from vector_store.records import (
    PinVector,
    batches,
    epoch_ms,
    from_epoch_ms,
    from_row,
    normalise,
    shape_hits,
    to_row,
)

WHEN = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def pin(**overrides: object) -> PinVector:
    values: dict[str, object] = dict(
        pin_id="p1",
        pin=[3.0, 4.0, 0.0],
        model_version=2,
        created_at=WHEN,
        board_ids=("b1", "b2"),
        is_ad=True,
    )
    values.update(overrides)
    return PinVector(**values)  # type: ignore[arg-type]


def test_normalise_gives_unit_length_float32() -> None:
    out = normalise([3.0, 4.0], dim=2)
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize(
    "vector", [[0.0, 0.0], [1.0, float("nan")], [1.0, float("inf")], [1.0, 2.0, 3.0]]
)
def test_normalise_refuses_vectors_that_cannot_rank(vector: list[float]) -> None:
    with pytest.raises(ValueError):
        normalise(vector, dim=2)


def test_row_round_trip_keeps_every_field() -> None:
    row = to_row(pin(), dim=3, max_boards=8)
    assert row["pin"] == pytest.approx([0.6, 0.8, 0.0])
    stored = from_row(row)
    assert stored.pin_id == "p1"
    assert stored.model_version == 2
    assert stored.created_at == WHEN
    assert stored.board_ids == ("b1", "b2")
    assert stored.is_ad is True


def test_naive_and_offset_datetimes_mean_the_same_instant() -> None:
    naive = datetime(2026, 3, 1, 12, 30)
    shifted = datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert epoch_ms(naive) == epoch_ms(WHEN) == epoch_ms(shifted)
    assert from_epoch_ms(epoch_ms(WHEN)) == WHEN


def test_duplicate_boards_are_collapsed_in_order() -> None:
    row = to_row(pin(board_ids=("b2", "b1", "b2")), dim=3, max_boards=2)
    assert row["board_ids"] == ["b2", "b1"]


def test_more_boards_than_the_cap_is_refused_on_every_backend() -> None:
    # The 2.3.5 server silently accepts an over-capacity ARRAY; lite refuses it.
    with pytest.raises(ValueError, match="cap"):
        to_row(pin(board_ids=("a", "b", "c")), dim=3, max_boards=2)


@pytest.mark.parametrize("pin_id", ["", "x" * 129])
def test_pin_ids_outside_the_varchar_limit_are_refused(pin_id: str) -> None:
    with pytest.raises(ValueError):
        to_row(pin(pin_id=pin_id), dim=3, max_boards=8)


def test_shape_hits_sorts_dedups_excludes_and_truncates() -> None:
    raw = [("a", 0.2, 1), ("self", 0.99, 1), ("b", 0.9, 1), ("a", 0.5, 1), ("c", 0.7, 1)]
    hits = shape_hits(raw, k=2, exclude=frozenset({"self"}))
    assert [(h.pin_id, h.score) for h in hits] == [("b", 0.9), ("c", 0.7)]
    assert all(h.model_version == 1 for h in hits)


def test_shape_hits_keeps_best_score_of_a_duplicate() -> None:
    hits = shape_hits([("a", 0.2, 3), ("a", 0.5, 3)], k=5)
    assert [(h.pin_id, h.score, h.model_version) for h in hits] == [("a", 0.5, 3)]


def test_batches_cover_every_row_once() -> None:
    rows = [{"i": i} for i in range(7)]
    chunks = list(batches(rows, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [r["i"] for c in chunks for r in c] == list(range(7))
    with pytest.raises(ValueError):
        list(batches(rows, 0))
