"""graph_store.rows: shaping write batches (dedupe, coalesce, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from graph_store.models import PinNode, Save
from graph_store.rows import (
    as_utc,
    chunked,
    edge_rows,
    key_successor,
    pin_rows,
    prefix_upper_bound,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_as_utc_converts_offsets_and_assumes_utc_for_naive() -> None:
    paris = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert as_utc(paris) == T0 and as_utc(paris).tzinfo == UTC
    assert as_utc(datetime(2026, 3, 1, 12, 0)) == T0


def test_edge_rows_coalesce_events_per_edge() -> None:
    saves = [
        Save("p2", "b1", "u1", T0 + timedelta(hours=2)),
        Save("p1", "b1", "u2", T0 + timedelta(hours=1)),
        Save("p1", "b1", "u1", T0 + timedelta(hours=3)),
        Save("p1", "b1", "u2", T0),  # same saver again, earlier
        Save("p1", "b0", "u1", T0),
    ]
    assert edge_rows(saves) == [
        {"pin_id": "p1", "board_id": "b0", "users": ["u1"], "first_at": T0, "last_at": T0},
        {
            "pin_id": "p1",
            "board_id": "b1",
            "users": ["u1", "u2"],
            "first_at": T0,
            "last_at": T0 + timedelta(hours=3),
        },
        {
            "pin_id": "p2",
            "board_id": "b1",
            "users": ["u1"],
            "first_at": T0 + timedelta(hours=2),
            "last_at": T0 + timedelta(hours=2),
        },
    ]


def test_edge_rows_ignore_exact_duplicates() -> None:
    save = Save("p1", "b1", "u1", T0)
    assert edge_rows([save, save, save]) == edge_rows([save])


def test_pin_rows_keep_last_occurrence_sorted_and_normalise_time() -> None:
    naive = datetime(2026, 3, 1, 12, 0)
    rows = pin_rows(
        [
            PinNode("p2", title="old"),
            PinNode("p1", title="one", created_at=naive, user_id="u", is_ad=True),
            PinNode("p2", title="new"),
        ]
    )
    assert [r["pin_id"] for r in rows] == ["p1", "p2"]
    assert rows[0]["created_at"] == T0 and rows[0]["created_at"].tzinfo == UTC
    assert rows[0]["is_ad"] is True
    assert rows[1]["title"] == "new" and rows[1]["created_at"] is None


def test_chunked_splits_into_bounded_slices() -> None:
    assert list(chunked([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunked([], 3)) == []
    with pytest.raises(ValueError):
        list(chunked([1], 0))


def test_prefix_upper_bound_brackets_exactly_the_prefixed_ids() -> None:
    bound = prefix_upper_bound("bench-7-")
    assert bound == "bench-7."
    inside = ["bench-7-", "bench-7-a", "bench-7-\uffff"]
    outside = ["bench-7", "bench-7.", "bench-8-", "bench-6-z"]
    assert all("bench-7-" <= s < bound for s in inside)
    assert not any("bench-7-" <= s < bound for s in outside)
    assert prefix_upper_bound("") is None


def test_key_successor_is_the_next_string_in_order() -> None:
    nxt = key_successor("p1")
    assert "p1" < nxt < "p10" < "p2"
