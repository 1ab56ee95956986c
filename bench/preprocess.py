"""Image preprocessing under hostile images: time and peak memory of the worst cases.

    .venv/bin/python bench/preprocess.py            # ~1 minute
    git show REV:encoder/preprocess.py > /tmp/old_preprocess.py
    .venv/bin/python bench/preprocess.py --baseline /tmp/old_preprocess.py   # before | after

Each case is a small file built in memory (most compress to a few KB) that asks the decoder
for a lot: extreme aspect ratios (the old resize-before-crop turned a 4,000,000 x 10 PNG into a
~20-gigapixel resize), the largest image the pixel cap admits, 16-bit, palette + transparency,
CMYK, animated. Every case runs in a fresh subprocess with an address-space limit (so an
impossible allocation fails there, not on the machine), and reports the outcome (the array
shape or the ImageRejected reason, or the exception that escaped), the median time of
`ImagePreprocessor.load` and the child's peak RSS (~45 MB of it is the interpreter with numpy and
Pillow imported; the file is built by the parent). Prints a table; writes JSON under
bench/results/.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128  # the default model's image size (encoder.config VisionConfig.image_size)


def _png(width: int, height: int, bit_depth: int = 8, colour: int = 2, extra: bytes = b"") -> bytes:
    """A valid PNG of zero pixels, built row by row through zlib: tiny for any size."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = b"\x00" + b"\x00" * ((width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra
        + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )  # fmt: skip


def _pillow(mode: str, size: tuple[int, int], fmt: str, **kwargs: object) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt, **kwargs)
    return out.getvalue()


def _animated_gif(frames: int, size: int) -> bytes:
    from PIL import Image

    images = [Image.new("P", (size, size), i % 256) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


_PALETTE = struct.pack(">I", 6) + b"PLTE" + b"\x00" * 6
_PALETTE += struct.pack(">I", zlib.crc32(b"PLTE" + b"\x00" * 6) & 0xFFFFFFFF)

CASES: dict[str, Callable[[], bytes]] = {
    "normal 640x480 JPEG": lambda: _pillow("RGB", (640, 480), "JPEG"),
    "aspect 4,000,000x10 PNG": lambda: _png(4_000_000, 10),
    "aspect 200,000x200 PNG": lambda: _png(200_000, 200),
    "aspect 10x4,000,000 PNG": lambda: _png(10, 4_000_000),
    "aspect 28,000x1,400 PNG (1:20)": lambda: _png(28_000, 1_400),
    "max pixels 6,300x6,300 PNG": lambda: _png(6_300, 6_300),
    "max pixels 6,300x6,300 JPEG": lambda: _pillow("RGB", (6_300, 6_300), "JPEG", quality=50),
    "16-bit RGB 4,000x4,000 PNG": lambda: _png(4_000, 4_000, bit_depth=16),
    "palette 6,000x6,000 PNG": lambda: _png(6_000, 6_000, colour=3, extra=_PALETTE),
    "CMYK 4,000x4,000 JPEG": lambda: _pillow("CMYK", (4_000, 4_000), "JPEG"),
    "animated GIF 200 frames": lambda: _animated_gif(200, 500),
}


def _peak_rss_mb() -> float:
    """This process's own RSS high-water mark (VmHWM; `ru_maxrss` would include the parent's,
    which Linux carries across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _implementation(module_path: str) -> Any:
    """`encoder.preprocess` as it is, or another version of that file (a baseline)."""
    sys.path.insert(0, str(ROOT))
    if not module_path:
        import encoder.preprocess

        return encoder.preprocess
    spec = importlib.util.spec_from_file_location("baseline_preprocess", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(name: str, path: str, module_path: str, repeat: int, limit_gb: float) -> None:
    """Runs one case (its file built by the parent) in this process; prints one JSON line."""
    limit = int(limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    module = _implementation(module_path)
    ImagePreprocessor, ImageRejected = module.ImagePreprocessor, module.ImageRejected

    data = Path(path).read_bytes()
    pre = ImagePreprocessor(size=SIZE)
    times, outcome = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            outcome = "array " + "x".join(map(str, pre.load(data).shape))
        except ImageRejected as exc:
            outcome = f"rejected: {exc.reason}"
        except BaseException as exc:  # what escaped: the defect this benchmark is about
            outcome = f"ESCAPED {type(exc).__name__}"
        times.append(time.perf_counter() - started)
    peak_mb = _peak_rss_mb()
    print(json.dumps({"outcome": outcome, "median_s": statistics.median(times),
                      "peak_rss_mb": peak_mb}))  # fmt: skip


def _run_case(name: str, path: Path, module_path: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = ["--repeat", str(args.repeat), "--memory-limit-gb", str(args.memory_limit_gb)]
    command = [sys.executable, __file__, "--child", name, str(path), module_path, *limits]
    failed = {"median_s": float("nan"), "peak_rss_mb": float("nan")}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"TIMEOUT > {args.timeout_s:.0f}s", **failed}
    line = done.stdout.strip().splitlines()[-1:]
    if not line:
        return {"outcome": f"CRASHED rc={done.returncode}", **failed}
    result: dict[str, Any] = json.loads(line[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit-gb", type=float, default=4.0)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--baseline", default="", help="another encoder/preprocess.py to compare")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, args.repeat, args.memory_limit_gb)
        return
    variants = {"before": args.baseline, "after": ""} if args.baseline else {"now": ""}
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    for name, build in CASES.items():
        path = work / "case.bin"
        path.write_bytes(build())
        row: dict[str, Any] = {"case": name, "bytes": path.stat().st_size}
        for label, module_path in variants.items():
            row[label] = _run_case(name, path, module_path, args)
            print(f"  {name} [{label}]: {row[label]['outcome']}", file=sys.stderr, flush=True)
        rows.append(row)
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nImagePreprocessor(size={SIZE}).load: median of {args.repeat} calls, peak RSS of a "
        f"fresh process per case, address space limited to {args.memory_limit_gb:g} GB"
    )
    header = "| case | file bytes |" + "".join(
        f" {v}: outcome | {v}: s | {v}: peak MB |" for v in variants
    )
    print(header + "\n|---|---:|" + "---|---:|---:|" * len(variants))
    for r in rows:
        cells = "".join(
            f" {r[v]['outcome']} | {r[v]['median_s']:.3f} | {r[v]['peak_rss_mb']:.0f} |"
            for v in variants
        )
        print(f"| {r['case']} | {r['bytes']:,} |{cells}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "repeat": args.repeat}
    (out / f"preprocess-{stamp}.json").write_text(json.dumps({"meta": meta, "rows": rows}))


if __name__ == "__main__":
    main()
