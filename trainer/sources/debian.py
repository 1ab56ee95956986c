"""Fetch a pinned Debian package (.deb) once, verify it, and read files out of its data.tar.

A .deb is an `ar` archive holding `data.tar.{xz,gz,zst}`; the few lines below read it with the
standard library (no dpkg needed, so this works on any OS). The sha256 is the one in Debian's
signed Packages index for that exact version.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_MIRROR = "https://deb.debian.org/debian"
AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    pool_path: str  # "pool/main/o/openclipart/openclipart-svg_0.18+dfsg-19_all.deb"
    sha256: str
    license: str

    @property
    def file_name(self) -> str:
        return self.pool_path.rsplit("/", 1)[-1]

    def spec(self) -> str:
        return f"debian:{self.name}={self.version}"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch_deb(
    package: DebianPackage,
    cache_dir: Path,
    mirror: str = DEFAULT_MIRROR,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    from trainer.sources.fetch import SourceIntegrityError

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / package.file_name
    if target.exists() and _sha256(target) == package.sha256:
        return target
    url = f"{mirror.rstrip('/')}/{package.pool_path}"
    log(f"downloading {package.spec()} from {url}")
    partial = target.with_suffix(".part")
    with httpx.stream("GET", url, timeout=300.0, follow_redirects=True) as response:
        response.raise_for_status()
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes(1 << 20):
                handle.write(chunk)
    if _sha256(partial) != package.sha256:
        partial.unlink(missing_ok=True)
        raise SourceIntegrityError(f"{package.spec()}: sha256 differs from {package.sha256}")
    os.replace(partial, target)
    return target


def verify_deb(path: Path, package: DebianPackage) -> Path:
    from trainer.sources.fetch import SourceIntegrityError

    if _sha256(path) != package.sha256:
        raise SourceIntegrityError(f"{path}: sha256 differs from {package.sha256}")
    return path


def read_deb_members(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """Files of the package's data.tar (paths without the leading `./`) that `wanted` accepts."""
    data = _ar_member(deb.read_bytes(), "data.tar")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:
            name = member.name.removeprefix("./")
            if member.isfile() and wanted(name):
                handle = archive.extractfile(member)
                if handle is not None:
                    out[name] = handle.read()
    return out


def _ar_member(blob: bytes, prefix: str) -> bytes:
    """The first ar member whose name starts with `prefix` (60-byte headers, 2-byte aligned)."""
    if not blob.startswith(AR_MAGIC):
        raise ValueError("not a Debian package (no ar header)")
    pos = len(AR_MAGIC)
    while pos + 60 <= len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = pos + 60
        if name.startswith(prefix):
            return blob[start : start + size]
        pos = start + size + (size % 2)
    raise ValueError(f"no {prefix}* member in the package")
