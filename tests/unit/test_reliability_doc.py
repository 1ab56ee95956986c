"""docs/RELIABILITY.md names a test for every promise: each one named must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`((?:unit|integration|e2e|faults)/[\w/]+\.py)::(\w+)`")


def test_every_test_the_reliability_table_names_exists() -> None:
    named = NAMED.findall((ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8"))
    assert len(named) >= 30
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (ROOT / "tests" / path).is_file()
        or f"def {name}(" not in (ROOT / "tests" / path).read_text(encoding="utf-8")
    ]
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"
