import json
from datetime import UTC, datetime

from vector_store import filters


def test_ids_with_quotes_and_backslashes_are_escaped() -> None:
    odd = 'we"ird\\id'
    expression = filters.pins_in([odd, "plain"])
    assert expression == 'pin_id in ["we\\"ird\\\\id", "plain"]'
    assert json.loads(expression.removeprefix("pin_id in ")) == [odd, "plain"]


def test_non_ascii_and_control_characters_go_in_as_themselves() -> None:
    """Milvus refuses JSON's backslash-u escapes: only backslash, quote, LF and CR are."""
    odd = "é\x17😀\tx\ny\rz"
    assert filters.string_literal(odd) == '"é\x17😀\tx\\ny\\rz"'


def test_board_filter_matches_any_listed_board() -> None:
    assert filters.on_any_board(["b1", "b2"]) == 'array_contains_any(board_ids, ["b1", "b2"])'


def test_is_ad_and_created_since() -> None:
    assert filters.is_ad(True) == "is_ad == true"
    assert filters.is_ad(False) == "is_ad == false"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert filters.created_since(when) == f"created_at >= {int(when.timestamp() * 1000)}"


def test_all_of_parenthesises_and_skips_empty_parts() -> None:
    assert filters.all_of() == ""
    assert filters.all_of(None, " ") == ""
    assert filters.all_of("a == 1") == "a == 1"
    assert filters.all_of("a == 1 or b == 2", None, "c == 3") == "(a == 1 or b == 2) and (c == 3)"


def test_exclusion_filter() -> None:
    assert filters.pins_not_in(["p1"]) == 'pin_id not in ["p1"]'
