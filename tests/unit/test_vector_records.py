from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from vector_store.records import (
    MAX_IMAGE_URI_BYTES,
    MAX_TITLE_BYTES,
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


def v(version: int, **fields: object) -> dict[str, object]:
    return {"model_version": version, **fields}


def test_shape_hits_sorts_dedups_excludes_and_truncates() -> None:
    raw = [("a", 0.2, v(1)), ("self", 0.99, v(1)), ("b", 0.9, v(1)), ("a", 0.5, v(1))]
    hits = shape_hits([*raw, ("c", 0.7, v(1))], k=2, exclude=frozenset({"self"}))
    assert [(h.pin_id, h.score) for h in hits] == [("b", 0.9), ("c", 0.7)]
    assert all(h.model_version == 1 for h in hits)


def test_shape_hits_keeps_best_score_of_a_duplicate() -> None:
    hits = shape_hits([("a", 0.2, v(3)), ("a", 0.5, v(3))], k=5)
    assert [(h.pin_id, h.score, h.model_version) for h in hits] == [("a", 0.5, 3)]


def test_hits_carry_the_rows_content_and_none_where_the_collection_has_none() -> None:
    new = v(2, board_ids=["b1"], title="Red bike", image_uri="file:///x.png")
    [hit] = shape_hits([("a", 0.5, new)], k=1)
    assert (hit.board_ids, hit.title, hit.image_uri) == (("b1",), "Red bike", "file:///x.png")
    [old] = shape_hits([("a", 0.5, v(1, board_ids=["b1"]))], k=1)  # created before content
    assert (old.board_ids, old.title, old.image_uri) == (("b1",), None, None)


def test_titles_are_cut_at_a_character_boundary_and_long_uris_left_out() -> None:
    title = "é" * (MAX_TITLE_BYTES // 2) + "x"  # one byte over the cap in UTF-8
    uri = "https://h/" + "a" * MAX_IMAGE_URI_BYTES
    row = to_row(pin(title=title, image_uri=uri), dim=3, max_boards=8)
    assert row["title"] == "é" * (MAX_TITLE_BYTES // 2)
    assert len(row["title"].encode()) <= MAX_TITLE_BYTES and row["image_uri"] == ""
    odd = "x" + "é" * MAX_TITLE_BYTES  # the cut falls inside a character: it is dropped whole
    assert to_row(pin(title=odd), dim=3, max_boards=8)["title"] == "x" + "é" * (
        (MAX_TITLE_BYTES - 1) // 2
    )
    fits = to_row(pin(title="T", image_uri="file:///a.png"), dim=3, max_boards=8)
    assert (fits["title"], fits["image_uri"]) == ("T", "file:///a.png")
    assert from_row(fits).title == "T" and from_row(fits).image_uri == "file:///a.png"
    bare = to_row(pin(title="T"), dim=3, max_boards=8, content=False)  # an older collection
    assert "title" not in bare and from_row(bare).title is None


def test_batches_cover_every_row_once() -> None:
    rows = [{"i": i} for i in range(7)]
    chunks = list(batches(rows, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [r["i"] for c in chunks for r in c] == list(range(7))
    with pytest.raises(ValueError):
        list(batches(rows, 0))
