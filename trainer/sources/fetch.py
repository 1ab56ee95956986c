"""Fetch a pinned npm package tarball once, verify it, and read files out of it.

Real evaluation data comes from packages the public npm registry serves (emoji and icon sets
with names, keywords and categories). Each source pins an exact version *and* its sha512
integrity string from the registry's metadata, so a dataset built today and one built next year
hold the same bytes — or the build fails loudly. Tarballs are cached; nothing is downloaded twice.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_REGISTRY = "https://registry.npmjs.org"
TARBALL_ROOT = "package/"  # npm packs every file under this folder


class SourceIntegrityError(RuntimeError):
    """A downloaded tarball does not match the sha512 the source pins."""


@dataclass(frozen=True)
class NpmPackage:
    name: str  # e.g. "@tabler/icons"
    version: str
    integrity: str  # "sha512-<base64>", as the registry reports it
    license: str

    @property
    def file_name(self) -> str:
        return f"{self.name.replace('@', '').replace('/', '-')}-{self.version}.tgz"

    def tarball_url(self, registry: str = DEFAULT_REGISTRY) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{registry.rstrip('/')}/{self.name}/-/{base}-{self.version}.tgz"

    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def sri_sha512(path: Path) -> str:
    with path.open("rb") as handle:
        return "sha512-" + base64.b64encode(hashlib.file_digest(handle, "sha512").digest()).decode()


def fetch_package(
    package: NpmPackage,
    cache_dir: Path,
    registry: str = DEFAULT_REGISTRY,
    timeout_s: float = 120.0,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """Path of the verified tarball in `cache_dir`, downloading it on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / package.file_name
    if target.exists() and sri_sha512(target) == package.integrity:
        return target
    url = package.tarball_url(registry)
    log(f"downloading {package.spec()} from {url}")
    partial = target.with_suffix(".part")
    with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
        response.raise_for_status()
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes(1 << 20):
                handle.write(chunk)
    got = sri_sha512(partial)
    if got != package.integrity:
        partial.unlink(missing_ok=True)
        raise SourceIntegrityError(f"{package.spec()}: sha512 {got} != pinned {package.integrity}")
    os.replace(partial, target)
    return target


def read_members(tarball: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """Files of the tarball whose path (without npm's `package/` prefix) `wanted` accepts."""
    out: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            name = member.name.removeprefix(TARBALL_ROOT)
            if not wanted(name):
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                out[name] = handle.read()
    return out
