"""The import direction of docs/ARCHITECTURE.md, and the one wiring place, read from the code.

- `encoder`, `graph_store`, `vector_store` import nothing of ours; `trainer` may import
  `encoder` and `graph_store`; `streams` wires the three stores' packages; `pinclip` is the
  application (it may import everything).
- Stores, encoders and registry clients are constructed only in `pinclip/factory.py` (tests and
  benchmarks build their own on purpose)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("encoder", "graph_store", "vector_store", "trainer", "streams", "pinclip")
ALLOWED = {
    "encoder": set(),
    "graph_store": set(),
    "vector_store": set(),
    "trainer": {"encoder", "graph_store"},
    "streams": {"encoder", "graph_store", "vector_store"},
    "pinclip": set(OURS),
}
CONSTRUCTORS = re.compile(
    r"(?<!class )\b(VectorStore|GraphStore|ModelRegistry|RegistryReader)\("
    r"|\b(EncoderService|OnnxEncoder)\.load\("
)
WIRING = Path("pinclip/factory.py")


def sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level packages of ours that `path` imports anywhere (functions and TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & set(OURS)
    return found


def test_every_package_imports_only_what_its_layer_allows() -> None:
    wrong = []
    for package in OURS:
        for path in sources(package):
            for other in imported(path) - ALLOWED[package] - {package}:
                wrong.append(f"{path.relative_to(ROOT)} imports {other}")
    assert wrong == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from streams.config import WorkerConfig\n")
    assert imported(bad) == {"streams"}


def test_stores_and_encoders_are_built_only_in_the_wiring_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("pinclip", "streams", "trainer")
        for path in sources(package)
        if path.relative_to(ROOT) != WIRING
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if CONSTRUCTORS.search(line)
    ]
    assert found == []
    assert CONSTRUCTORS.search((ROOT / WIRING).read_text(encoding="utf-8"))
