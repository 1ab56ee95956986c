"""Milvus boolean filter expressions built from values, never by string pasting at call sites.

String literals escape only backslash, double quote, newline and carriage return; every other
character goes in as itself. Verified on milvus-lite 3.2.2 and the 2.3.5 server for quotes,
backslashes, control characters, non-ASCII and astral characters (pymilvus' own
`get(ids=...)` breaks on quotes, and JSON's backslash-u escapes are refused by both: "unknown
escape sequence"). An id with NUL never matches anything (Milvus ends the literal there).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from vector_store.records import epoch_ms

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def string_literal(value: str) -> str:
    """A Milvus expression string literal for `value` (see the module docstring)."""
    return '"' + str(value).translate(_ESCAPES) + '"'


def _literal_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(string_literal(v) for v in values) + "]"


def pins_in(pin_ids: Iterable[str]) -> str:
    return f"pin_id in {_literal_list(pin_ids)}"


def pins_not_in(pin_ids: Iterable[str]) -> str:
    return f"pin_id not in {_literal_list(pin_ids)}"


def on_any_board(board_ids: Iterable[str]) -> str:
    """Pins saved to at least one of `board_ids`."""
    return f"array_contains_any(board_ids, {_literal_list(board_ids)})"


def is_ad(value: bool) -> str:
    return f"is_ad == {'true' if value else 'false'}"


def created_since(moment: datetime) -> str:
    return f"created_at >= {epoch_ms(moment)}"


def all_of(*expressions: str | None) -> str:
    """AND of the non-empty expressions, each parenthesised so caller precedence is kept."""
    parts = [e.strip() for e in expressions if e and e.strip()]
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return " and ".join(f"({p})" for p in parts)
