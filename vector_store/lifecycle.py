"""Version lifecycle rules: when the alias may move, and when an old version may be dropped.

I/O-free on purpose: these are the rules that keep readers from ever seeing a half-filled or
vanished collection, so they are unit-tested exhaustively and the adapter only obeys them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FillCheck:
    """What `verify` measured on a candidate version before an alias switch."""

    version: int
    count: int
    expected_count: int
    loaded: bool
    indexed: bool

    @property
    def problems(self) -> list[str]:
        found = []
        if self.count < self.expected_count:
            found.append(f"has {self.count} rows, expected at least {self.expected_count}")
        if not self.loaded:
            found.append("is not loaded")
        if not self.indexed:
            found.append("has no vector index")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


def switch_problems(
    target: int, live: int | None, check: FillCheck | None, target_count: int
) -> list[str]:
    """Why the alias must not move from `live` to `target` (empty list: it may).

    - With a fill check, every problem it found blocks.
    - Without one, moving the alias off a live version onto an EMPTY collection is refused:
      that is exactly the "results went empty because of the switch" failure. The first switch
      (no live version yet) may point at an empty collection — nothing regresses.
    """
    if check is not None:
        if check.version != target:
            return [f"fill check is for v{check.version}, not v{target}"]
        return [f"v{target} {p}" for p in check.problems]
    if live is not None and live != target and target_count == 0:
        return [f"v{target} is empty while v{live} is live; pass expected_count after the fill"]
    return []


def drop_problems(
    version: int,
    live: int | None,
    retired_at: datetime | None,
    now: datetime,
    grace: timedelta,
) -> list[str]:
    """Why `version` must not be dropped yet (empty list: it may).

    A version that was live once is kept for `grace` after it stopped being live, so readers
    holding a resolved collection name (or a cached alias) finish, and a rollback stays cheap.
    A version that never went live (an abandoned fill) has no grace period.
    """
    if version == live:
        return [f"v{version} is live"]
    if retired_at is not None and now - retired_at < grace:
        remaining = grace - (now - retired_at)
        return [f"v{version} retired {retired_at.isoformat()}, grace ends in {remaining}"]
    return []


def droppable_versions(
    versions: list[int],
    live: int | None,
    retired_at: dict[int, datetime],
    now: datetime,
    grace: timedelta,
    keep_newer_than_live: bool = True,
) -> list[int]:
    """Versions a clean-up pass may drop now.

    A version that never went live and is newer than the live one (or exists before anything
    went live) is being filled by a backfill right now: it is kept unless `keep_newer_than_live`
    is False (an operator abandoning a fill). A version that was live once (it has a retirement
    time, e.g. after a rollback) is never mistaken for a fill.
    """
    drop = []
    for version in sorted(versions):
        retired = retired_at.get(version)
        filling = retired is None and (live is None or version > live)
        if keep_newer_than_live and filling:
            continue
        if not drop_problems(version, live, retired, now, grace):
            drop.append(version)
    return drop
