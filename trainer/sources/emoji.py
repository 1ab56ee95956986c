"""`emoji`: Google's Noto emoji images with their Unicode names, keywords and subgroups.

- images: `emoji-datasource-google` (64 px PNGs; images Apache-2.0, data MIT),
- names and keywords: `emojibase-data` (English CLDR annotations, MIT),
- boards: the Unicode emoji subgroup (`face-smiling`, `animal-mammal`, `food-fruit`, ...): a
  real, human-made grouping of ~100 boards,
- near-duplicate groups: an emoji and its skin-tone variants (same drawing, other skin colour),
  so a split holds them out together.

Pin text = the emoji's CLDR name only (`trainer/sources/base.py`: PIN_TEXT_RULE). CLDR's
keyword lists are catalogue metadata, and they restate the subgroups (`animal`, `face`,
`food`): a new pin arrives with a name, not with its category's keywords.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.dataset import PinRecord, SaveRecord
from trainer.sources.base import BuiltSource, SourceSpec
from trainer.sources.fetch import NpmPackage, read_members

IMAGES = NpmPackage(
    "emoji-datasource-google",
    "16.0.0",
    "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    "MIT (data); Noto Emoji images Apache-2.0",
)
NAMES = NpmPackage(
    "emojibase-data",
    "17.0.0",
    "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
    "MIT",
)
SKIPPED_CATEGORIES = frozenset({"Component"})  # bare skin-tone swatches and hair parts


def build(tarballs: dict[str, Path]) -> BuiltSource:
    """Pins, saves and PNG bytes from the two verified tarballs."""
    catalog: list[dict[str, Any]] = json.loads(
        read_members(tarballs[IMAGES.name], lambda n: n == "emoji.json")["emoji.json"]
    )
    labels = _labels(tarballs[NAMES.name])
    pngs = read_members(tarballs[IMAGES.name], lambda n: n.startswith("img/google/64/"))
    built = BuiltSource()
    for entry in catalog:
        if entry.get("category") in SKIPPED_CATEGORIES or not entry.get("has_img_google"):
            continue
        base = entry["unified"]
        variants = [(base, entry["image"])] + [
            (v["unified"], v["image"])
            for v in (entry.get("skin_variations") or {}).values()
            if v.get("has_img_google")
        ]
        for unified, image in variants:
            png = pngs.get(f"img/google/64/{image}")
            if png is None:
                continue
            title = labels.get(_key(unified), {}).get("label") or entry["name"].lower()
            pin_id = f"emoji-{unified.lower()}"
            path = f"images/{pin_id}.png"
            built.images[path] = png
            built.pins.append(PinRecord(pin_id, title, "", path, group=f"emoji-{base.lower()}"))
            built.saves.append(SaveRecord(pin_id, f"emoji/{entry['subcategory']}"))
    return built


def _key(hexcode: str) -> str:
    """emojibase drops the FE0F variation selector that emoji-datasource keeps."""
    return "-".join(p for p in hexcode.upper().split("-") if p != "FE0F")


def _labels(tarball: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads(read_members(tarball, lambda n: n == "en/data.json")["en/data.json"])
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[_key(row["hexcode"])] = {"label": row["label"]}
        for skin in row.get("skins") or []:
            out[_key(skin["hexcode"])] = {"label": skin["label"]}
    return out


SPEC = SourceSpec(
    name="emoji",
    summary="Noto emoji (64 px) with their CLDR names; boards = Unicode subgroups",
    packages=(IMAGES, NAMES),
    build=build,
    report_only=False,
)
