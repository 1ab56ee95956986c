"""`clipart`: the Open Clip Art Library 0.18 (public domain) as Debian packages it.

Real illustrations by hundreds of artists, each SVG carrying its own Dublin Core metadata
(title, description, keywords — in whatever language the artist wrote). Boards = the library's
folder tree (`food/fruit`, `animals/birds`, `transportation/vehicles`, ...: ~160 boards).
Near-duplicate group = the drawing's name without its `_NN` counter (`pear_01`, `pear_02`: the
same concept drawn twice). The `special/` folder (fill gradients and patterns, not pictures)
is left out. Pin text = the artist's title and description (`base.PIN_TEXT_RULE`); the
artists' keyword lists are left out — the library filed drawings into folders *from* those
keywords, so they restate the board (`food`, `fruit`, `signs_and_symbols`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from trainer.dataset import PinRecord, SaveRecord
from trainer.sources.base import BuiltSource
from trainer.sources.debian import DebianPackage, read_deb_members
from trainer.sources.icons import words
from trainer.sources.raster import rasterize_svg

PACKAGE = DebianPackage(
    "openclipart-svg",
    "1:0.18+dfsg-19",
    "pool/main/o/openclipart/openclipart-svg_0.18+dfsg-19_all.deb",
    "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5",
    "public domain (Open Clip Art Library)",
)
ROOT = "usr/share/openclipart/svg/"
SKIPPED_FOLDERS = ("special/",)
_COUNTER = re.compile(r"(_\d+)+$")
NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
    "cc2": "http://creativecommons.org/ns#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}


def build(debs: dict[str, Path]) -> BuiltSource:
    svgs = read_deb_members(debs[PACKAGE.name], lambda n: n.startswith(ROOT) and n.endswith(".svg"))
    built = BuiltSource()
    for path, svg in sorted(svgs.items()):
        rel = path.removeprefix(ROOT)
        folder, _, file_name = rel.rpartition("/")
        if not folder or rel.startswith(SKIPPED_FOLDERS):
            continue
        stem = file_name.removesuffix(".svg")
        try:
            png = rasterize_svg(svg)
        except ValueError:
            continue  # an SVG resvg cannot draw: no image, no pin
        title, description = svg_metadata(svg)
        pin_id = f"clipart-{folder.replace('/', '-')}-{stem}"
        image = f"images/{pin_id}.png"
        built.images[image] = png
        group = f"clipart-{_COUNTER.sub('', stem) or stem}"
        built.pins.append(PinRecord(pin_id, title or words(stem), description, image, group))
        built.saves.append(SaveRecord(pin_id, f"clipart/{folder}"))
    return built


def svg_metadata(svg: bytes) -> tuple[str, str]:
    """(title, description) from the drawing's RDF work, "" where absent (a description that
    only repeats the title counts as absent)."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return "", ""
    work = root.find(".//cc:Work", NS) or root.find(".//cc2:Work", NS)
    if work is None:
        return "", ""
    title = _text(work.find("dc:title", NS))
    description = _text(work.find("dc:description", NS))
    return title, description if description != title else ""


def _text(node: ET.Element | None) -> str:
    return " ".join((node.text or "").split()) if node is not None else ""
