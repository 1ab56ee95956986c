"""Icon sets with names, keywords and categories, rasterised from SVG.

- `tabler`: Tabler Icons (MIT). Boards = the set's category (`Arrows`, `Food`, `Weather`, ...);
  pins = every icon in each style it ships (outline, filled); near-duplicate group = the icon's
  concept: its name without a numbered or `-off` suffix, across styles (`bell`, `bell-2`,
  `bell-off`, `bell` filled are one group).
- `mdi`: Material Design Icons (Pictogrammers Free License / Apache-2.0). Boards = the set's
  tags (`Home Automation`, `Food / Drink`, ...; an icon may carry several); near-duplicate
  group = the set's own `baseIconId` (`account-network-outline` belongs to `account-network`).
  Kept for final reporting only.

Pin text = the icon's name as words (`base.PIN_TEXT_RULE`): the sets' tag and alias lists are
catalogue search metadata, left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trainer.dataset import PinRecord, SaveRecord
from trainer.sources.base import BuiltSource, SourceSpec
from trainer.sources.fetch import NpmPackage, read_members
from trainer.sources.raster import rasterize_svg

TABLER = NpmPackage(
    "@tabler/icons",
    "3.52.0",
    "sha512-dldKlJNfO/gZnGLcIY0X2EFFKIMGwL/rEvTqglvBgAPFiwj9pZOCN5V3Sf0Gyjq6foX4VQmLdOmsS4w5FdWKAw==",
    "MIT",
)
MDI = NpmPackage(
    "@mdi/svg",
    "7.4.47",
    "sha512-WQ2gDll12T9WD34fdRFgQVgO8bag3gavrAgJ0frN4phlwdJARpE6gO1YvLEMJR0KKgoc+/Ea/A0Pp11I00xBvw==",
    "Pictogrammers Free License (Apache-2.0)",
)
_VARIANT_SUFFIX = re.compile(r"(-(off|\d+))+$")


def words(name: str) -> str:
    """`arrow-big-up-lines` → `arrow big up lines`: how a person would title the icon."""
    return name.replace("-", " ").replace("_", " ").strip()


def tabler_concept(name: str) -> str:
    return _VARIANT_SUFFIX.sub("", name) or name


def build_tabler(tarballs: dict[str, Path]) -> BuiltSource:
    tarball = tarballs[TABLER.name]
    catalog: dict[str, dict[str, Any]] = json.loads(
        read_members(tarball, lambda n: n == "icons.json")["icons.json"]
    )
    svgs = read_members(tarball, lambda n: n.startswith("icons/") and n.endswith(".svg"))
    built = BuiltSource()
    for name, entry in sorted(catalog.items()):
        category = (entry.get("category") or "").strip()
        if not category:
            continue  # no grouping: it could never be a relevant answer
        for style in sorted(entry.get("styles", {})):
            svg = svgs.get(f"icons/{style}/{name}.svg")
            if svg is None:
                continue
            pin_id = f"tabler-{style}-{name}"
            title = words(name) if style == "outline" else f"{words(name)} ({style})"
            _add(built, pin_id, title, svg, f"tabler-{tabler_concept(name)}")
            built.saves.append(SaveRecord(pin_id, f"tabler/{category.lower()}"))
    return built


def build_mdi(tarballs: dict[str, Path]) -> BuiltSource:
    tarball = tarballs[MDI.name]
    catalog: list[dict[str, Any]] = json.loads(
        read_members(tarball, lambda n: n == "meta.json")["meta.json"]
    )
    svgs = read_members(tarball, lambda n: n.startswith("svg/") and n.endswith(".svg"))
    built = BuiltSource()
    for entry in sorted(catalog, key=lambda e: str(e["name"])):
        name, tags = str(entry["name"]), [str(t) for t in entry.get("tags", []) if str(t)]
        svg = svgs.get(f"svg/{name}.svg")
        if entry.get("deprecated") or not tags or svg is None:
            continue
        pin_id = f"mdi-{name}"
        _add(built, pin_id, words(name), svg, f"mdi-{entry.get('baseIconId') or name}")
        for tag in tags:
            board = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")
            built.saves.append(SaveRecord(pin_id, f"mdi/{board}"))
    return built


def _add(built: BuiltSource, pin_id: str, title: str, svg: bytes, group: str) -> None:
    path = f"images/{pin_id}.png"
    built.images[path] = rasterize_svg(svg)
    built.pins.append(PinRecord(pin_id, title, "", path, group=group))


TABLER_SPEC = SourceSpec(
    name="tabler",
    summary="Tabler icons (outline + filled, rasterised); boards = icon categories",
    packages=(TABLER,),
    build=build_tabler,
    report_only=False,
)
MDI_SPEC = SourceSpec(
    name="mdi",
    summary="Material Design Icons (rasterised); boards = icon tags. Final reporting only",
    packages=(MDI,),
    build=build_mdi,
    report_only=True,
)
