"""Dataset sources: package parsing into the dataset format, integrity, near-duplicate groups.

No network: the tests write small tarballs shaped like the real packages and feed them in.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from trainer.dataset import Dataset, PinRecord, SaveRecord, read_dataset
from trainer.sources import SourceIntegrityError, build_dataset, emoji
from trainer.sources.clipart import svg_metadata
from trainer.sources.debian import _ar_member
from trainer.sources.raster import normalise_root_size
from trainer.split import cold_start_split


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), (*colour, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _emoji_packages(tmp_path: Path) -> dict[str, Path]:
    catalog = [
        {"name": "WAVING HAND SIGN", "unified": "1F44B", "image": "1f44b.png",
         "category": "People & Body", "subcategory": "hand-fingers-open", "has_img_google": True,
         "skin_variations": {"1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png",
                                       "has_img_google": True}}},
        {"name": "RED APPLE", "unified": "1F34E", "image": "1f34e.png", "category": "Food & Drink",
         "subcategory": "food-fruit", "has_img_google": True},
        {"name": "EMOJI MODIFIER FITZPATRICK TYPE-1-2", "unified": "1F3FB", "image": "1f3fb.png",
         "category": "Component", "subcategory": "skin-tone", "has_img_google": True},
    ]  # fmt: skip
    names = [
        {"hexcode": "1F44B", "label": "waving hand", "tags": ["hand", "wave"],
         "skins": [{"hexcode": "1F44B-1F3FB", "label": "waving hand: light skin tone"}]},
        {"hexcode": "1F34E", "label": "red apple", "tags": ["apple", "fruit", "red"]},
    ]  # fmt: skip
    images = {
        f"img/google/64/{n}": _png(c)
        for n, c in (("1f44b.png", (250, 200, 0)), ("1f44b-1f3fb.png", (250, 220, 180)),
                     ("1f34e.png", (220, 20, 20)), ("1f3fb.png", (250, 220, 180)))
    }  # fmt: skip
    return {
        emoji.IMAGES.name: _tarball(
            tmp_path / "images.tgz", {"emoji.json": json.dumps(catalog).encode(), **images}
        ),
        emoji.NAMES.name: _tarball(
            tmp_path / "names.tgz", {"en/data.json": json.dumps(names).encode()}
        ),
    }


def test_emoji_source_gives_names_boards_and_skin_tone_groups(tmp_path: Path) -> None:
    built = emoji.build(_emoji_packages(tmp_path))
    by_id = {p.pin_id: p for p in built.pins}
    assert set(by_id) == {"emoji-1f44b", "emoji-1f44b-1f3fb", "emoji-1f34e"}  # no Component
    assert by_id["emoji-1f44b-1f3fb"].title == "waving hand: light skin tone"
    assert by_id["emoji-1f34e"].description == ""  # CLDR keywords are not pin text
    assert (
        by_id["emoji-1f44b"].group == by_id["emoji-1f44b-1f3fb"].group != by_id["emoji-1f34e"].group
    )
    boards = {s.pin_id: s.board_id for s in built.saves}
    assert boards["emoji-1f34e"] == "emoji/food-fruit"
    assert all(built.images[p.image][:8] == b"\x89PNG\r\n\x1a\n" for p in built.pins)


def test_build_refuses_a_package_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    with pytest.raises(SourceIntegrityError):
        build_dataset("emoji", tmp_path / "out", tarballs=_emoji_packages(tmp_path))
    assert not (tmp_path / "out" / "emoji").exists()


def test_unknown_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="known"):
        build_dataset("nope", tmp_path)


def test_clipart_metadata_and_unit_sizes() -> None:
    svg = b"""<svg xmlns="http://www.w3.org/2000/svg" width="250pt" height="150pt"
      xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/"
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><metadata><rdf:RDF><cc:Work>
      <dc:title>Pear</dc:title><dc:description>A  green pear</dc:description>
      <dc:subject><rdf:Bag><rdf:li>food</rdf:li><rdf:li>pear</rdf:li><rdf:li>fruit</rdf:li>
      </rdf:Bag></dc:subject></cc:Work></rdf:RDF></metadata></svg>"""
    assert svg_metadata(svg) == ("Pear", "A green pear")  # the keyword list is left out
    assert svg_metadata(b"<svg") == ("", "")
    fixed = normalise_root_size(svg.decode())
    assert 'width="333.333"' in fixed and 'viewBox="0 0 333.333 200"' in fixed


def test_deb_reader_finds_the_data_member() -> None:
    def member(name: str, data: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    blob = b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.xz", b"abc")
    assert _ar_member(blob, "data.tar") == b"abc"
    with pytest.raises(ValueError):
        _ar_member(b"garbage", "data.tar")


def test_split_holds_out_whole_near_duplicate_groups() -> None:
    rng = random.Random(0)
    pins, saves = [], []
    for g in range(60):
        for v in range(rng.randint(1, 5)):
            pid = f"p{g}-{v}"
            pins.append(PinRecord(pid, f"t{g}", "", "x.png", group=f"g{g}"))
            saves.append(SaveRecord(pid, f"b{g % 7}"))
    dataset = Dataset("/", pins, saves)
    group_of = {p.pin_id: p.group for p in pins}
    for seed in range(5):
        split = cold_start_split(dataset, 0.2, seed)
        held_groups = {group_of[p] for p in split.heldout_pin_ids}
        train_groups = {group_of[p] for p in split.train_pin_ids}
        assert held_groups and not held_groups & train_groups
        assert all(not r & set(split.heldout_pin_ids) for r in split.relevant.values())
        share = len([p for p in pins if p.group in held_groups]) / len(pins)
        assert 0.1 < share < 0.35


def test_group_round_trips_and_is_optional(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text('{"format": "pinclip-dataset", "format_version": 1}')
    (tmp_path / "pins.jsonl").write_text(
        '{"pin_id": "a", "title": "t", "description": "", "image": "a.png", "group": "g"}\n'
        '{"pin_id": "b", "title": "t", "description": "", "image": "b.png"}\n'
    )
    (tmp_path / "saves.jsonl").write_text('{"pin_id": "a", "board_id": "x"}\n')
    dataset = read_dataset(tmp_path)
    assert [p.group for p in dataset.pins] == ["g", ""]
