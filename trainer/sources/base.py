"""What a dataset source is: pinned packages in, pins + saves + image files out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainer.dataset import PinRecord, SaveRecord
from trainer.sources.debian import DebianPackage
from trainer.sources.fetch import NpmPackage

Package = NpmPackage | DebianPackage

PIN_TEXT_RULE = """\
A pin's text is what a person attaches to one new item: its title, and a free-text
description where its author wrote one. Keyword, tag and alias lists are left out: they are
catalogue metadata written so an item is found within the catalogue's own categories (the
same categories that are our boards), and a new pin never arrives with them. Titles are kept
verbatim, even where they name the board."""


@dataclass
class BuiltSource:
    pins: list[PinRecord] = field(default_factory=list)
    saves: list[SaveRecord] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # path relative to the dataset → bytes


@dataclass(frozen=True)
class SourceSpec:
    name: str
    summary: str
    packages: tuple[Package, ...]
    build: Callable[[dict[str, Path]], BuiltSource]  # package name → verified archive
    # True: for final reporting only. Settings (presets, learning rates, steps) are never chosen
    # by looking at this dataset's numbers, so its figures estimate unseen data honestly.
    report_only: bool = False

    def license(self) -> str:
        return "; ".join(f"{p.spec()}: {p.license}" for p in self.packages)
