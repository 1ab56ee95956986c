"""How model versions map to collection names: `<prefix><N>`, e.g. `pins_v3`.

The prefix is configurable so tests (and several deployments on one shared server) never touch
each other's collections; the alias name is configured beside it for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class VersionNaming:
    """Collection prefix and alias of one deployment."""

    prefix: str = "pins_v"
    alias: str = "pins"

    def __post_init__(self) -> None:
        # Milvus names: letters, digits and underscores, not starting with a digit.
        for label, value in (("prefix", self.prefix), ("alias", self.alias)):
            if not _NAME_RULE.match(value):
                raise ValueError(f"{label} {value!r} is not a valid Milvus name")
        if self.alias.startswith(self.prefix):
            # Otherwise the alias could be parsed as a version collection name.
            raise ValueError("the alias must not start with the collection prefix")

    def collection(self, version: int) -> str:
        if version < 1:
            raise ValueError(f"model versions start at 1, got {version}")
        return f"{self.prefix}{version}"

    def version_of(self, collection_name: str) -> int | None:
        """The version a collection name encodes, or None when it is not one of ours."""
        if not collection_name.startswith(self.prefix):
            return None
        tail = collection_name[len(self.prefix) :]
        if not tail.isdigit() or tail.startswith("0"):
            return None
        return int(tail)

    def versions_among(self, collection_names: list[str]) -> list[int]:
        """Our versions among all the collections a server lists, ascending."""
        found = (self.version_of(name) for name in collection_names)
        return sorted(v for v in found if v is not None)
