"""Real evaluation datasets, built on demand from public packages (never committed).

`build_dataset("emoji", root)` downloads the pinned npm tarballs once (sha512-verified), turns
them into the trainer's dataset format (`trainer.dataset`: pins.jsonl with a `group` key for
near-duplicate groups, saves.jsonl with real groupings as boards, PNG images) and caches the
result under `root/<name>`. A second call returns the cached directory.

| name | pins | boards | groups | use |
|---|---|---|---|---|
| `emoji` | Noto emoji + skin tones | Unicode subgroups | base emoji | development |
| `tabler` | Tabler icons, 2 styles | icon categories | icon concept | development |
| `clipart` | Open Clip Art Library (Debian) | library folders | drawing name | development |
| `mdi` | Material Design Icons | icon tags | base icon | final reporting only |
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from trainer.dataset import write_dataset
from trainer.sources import clipart
from trainer.sources.base import BuiltSource, Package, SourceSpec
from trainer.sources.debian import DEFAULT_MIRROR, DebianPackage, fetch_deb, verify_deb
from trainer.sources.emoji import SPEC as EMOJI
from trainer.sources.fetch import DEFAULT_REGISTRY, NpmPackage, fetch_package, sri_sha512
from trainer.sources.fetch import SourceIntegrityError as SourceIntegrityError
from trainer.sources.icons import MDI_SPEC, TABLER_SPEC

CLIPART = SourceSpec(
    name="clipart",
    summary="Open Clip Art Library 0.18 illustrations; boards = library folders",
    packages=(clipart.PACKAGE,),
    build=clipart.build,
)
SOURCES: dict[str, SourceSpec] = {s.name: s for s in (EMOJI, CLIPART, TABLER_SPEC, MDI_SPEC)}
# Bump when a builder's output changes, so cached datasets are rebuilt.
BUILDER_VERSION = 5  # 5: pin text = title (+ free description), no keyword lists
TARBALL_DIR = "_packages"

__all__ = ["SOURCES", "BuiltSource", "SourceSpec", "build_dataset", "default_datasets_dir"]


def default_datasets_dir() -> Path:
    """`$XDG_CACHE_HOME/pinclip/datasets` (default `~/.cache/pinclip/datasets`)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pinclip" / "datasets"


def is_built(directory: Path) -> bool:
    import json

    meta_path = directory / "dataset.json"
    if not meta_path.exists():
        return False
    meta = json.loads(meta_path.read_text())
    return bool(meta.get("builder_version") == BUILDER_VERSION)


def build_dataset(
    name: str,
    root: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    mirror: str = DEFAULT_MIRROR,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
    tarballs: dict[str, Path] | None = None,
) -> Path:
    """Directory of dataset `name` under `root`, built if missing. `tarballs` (package name →
    local .tgz/.deb) skips the download, e.g. for an offline mirror; they are still verified."""
    if name not in SOURCES:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(SOURCES))}")
    spec = SOURCES[name]
    root = root or default_datasets_dir()
    target = root / name
    if is_built(target) and not force:
        return target
    local = tarballs or {}
    paths = {
        p.name: _verified(local[p.name], p)
        if p.name in local
        else _fetch(p, root / TARBALL_DIR, registry, mirror, log)
        for p in spec.packages
    }
    log(f"building {name} from {', '.join(p.spec() for p in spec.packages)}")
    built = spec.build(paths)
    staging = root / f".{name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    for rel, data in built.images.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    write_dataset(staging, built.pins, built.saves, _meta(spec, built))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    boards = len({s.board_id for s in built.saves})
    log(f"{name}: {len(built.pins)} pins, {boards} boards → {target}")
    return target


def _fetch(
    package: Package, cache: Path, registry: str, mirror: str, log: Callable[[str], None]
) -> Path:
    if isinstance(package, DebianPackage):
        return fetch_deb(package, cache, mirror, log=log)
    return fetch_package(package, cache, registry, log=log)


def _verified(path: Path, package: Package) -> Path:
    if isinstance(package, DebianPackage):
        return verify_deb(path, package)
    if sri_sha512(path) != package.integrity:
        raise SourceIntegrityError(f"{path}: sha512 differs from the pinned {package.integrity}")
    return path


def _meta(spec: SourceSpec, built: BuiltSource) -> dict[str, object]:
    return {
        "name": spec.name,
        "summary": spec.summary,
        "license": spec.license(),
        "sources": [_describe(p) for p in spec.packages],
        "report_only": spec.report_only,
        "num_boards": len({s.board_id for s in built.saves}),
        "num_groups": len({p.group for p in built.pins}),
        "builder_version": BUILDER_VERSION,
    }


def _describe(package: Package) -> dict[str, str]:
    if isinstance(package, NpmPackage):
        return {"npm": package.name, "version": package.version, "integrity": package.integrity}
    return {"debian": package.name, "version": package.version, "sha256": package.sha256}
