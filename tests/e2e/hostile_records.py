"""Hostile records of every kind issue 9 names (and some it does not), as raw Kafka values.

Each builder returns `(kind, value)` pairs; `kind` names the attack in a failure message. The
values are bytes exactly as a hostile producer would write them — nothing here goes through our
own models, so nothing is cleaned up on the way in.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

Record = tuple[str, bytes]


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb's header)."""
    data = bytearray(png((4, 4)))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_pins(prefix: str, base: dict[str, Any], tmp: Path, loopback: str) -> list[Record]:
    """Hostile NewPin records; `base` is a valid pin's JSON fields without an image source,
    `loopback` the URL root of a
    local HTTP server that must never receive a request, `tmp` a directory under the worker's
    file roots (FIFO, symlinks)."""
    fifo = tmp / "fifo.png"
    os.mkfifo(fifo)
    escape = tmp / "escape.png"
    escape.symlink_to("/etc/passwd")
    port = loopback.rsplit(":", 1)[1]

    good_image = b64(png((8, 8)))

    def pin(kind: str, **fields: Any) -> Record:
        """`base` (no image source) + a valid inline image unless `fields` bring their own."""
        image = {} if {"image_b64", "image_uri"} & set(fields) else {"image_b64": good_image}
        value = {**base, "pin_id": f"{prefix}bad-{kind}", **image, **fields}
        return kind, json.dumps(value).encode()

    def uri(kind: str, target: str) -> Record:
        return pin(kind, image_uri=target)

    return [
        ("bad-json", b'{"pin_id": "broken'),
        ("not-an-object", b"[1, 2, 3]"),
        ("empty", b""),
        ("not-utf8", bytes(range(128, 256)) * 4),
        ("huge-garbage", bytes(range(256)) * 3_500),  # ~900 KB, escapes 4-6x as text
        pin("huge-field", description="x" * 900_000),
        ("deep-nesting", b"[" * 100_000 + b"]" * 100_000),
        pin("wrong-type-id", pin_id=12345),
        pin("wrong-type-ad", is_ad="maybe"),
        pin("wrong-type-time", created_at=1_700_000_000),
        pin("schema-v2", schema_version=2),
        pin("nul-in-id", pin_id=f"{prefix}bad-\x00nul"),
        pin("id-too-long", pin_id=prefix + "x" * 300),
        pin("uri-too-long", image_uri="https://example.org/" + "a" * 5_000),
        pin("title-too-long", title="t" * 1_001),
        pin("null-flag", is_ad=None),
        pin("two-sources", image_b64=good_image, image_uri="https://example.org/x.png"),
        pin("time-overflow", created_at="9999-12-31T23:00:00-05:00"),
        pin("time-underflow", created_at="0001-01-01T00:30:00+01:00"),
        pin("time-far-future", created_at="2999-01-01T00:00:00Z"),
        pin("time-before-epoch", created_at="1969-07-20T20:17:00Z"),
        pin("bad-base64", image_b64="!!not*base64!!"),
        pin("corrupt-image", image_b64=b64(png((32, 32))[:-40])),
        pin("not-an-image", image_b64=b64(b"<svg onload=alert(1)>")),
        pin("bomb-header", image_b64=b64(png_claiming(60_000, 60_000))),
        pin("extreme-aspect", image_b64=b64(png((20_000, 1)))),
        uri("loopback", f"{loopback}/a.png"),
        uri("localhost", f"http://localhost:{port}/b.png"),
        uri("loopback-decimal", f"http://2130706433:{port}/c.png"),
        uri("loopback-hex", f"http://0x7f.0.0.1:{port}/d.png"),
        uri("loopback-short", f"http://127.1:{port}/e.png"),
        uri("loopback-v6", f"http://[::1]:{port}/f.png"),
        uri("loopback-mapped", f"http://[::ffff:127.0.0.1]:{port}/g.png"),
        uri("private-10", "http://10.1.2.3/x.png"),
        uri("private-192", "http://192.168.0.1/x.png"),
        uri("metadata", "http://169.254.169.254/latest/meta-data/"),
        uri("unique-local-v6", "http://[fd00::1]/x.png"),
        uri("file-outside-roots", "file:///etc/passwd"),
        uri("file-symlink-escape", escape.as_uri()),
        uri("fifo", fifo.as_uri()),
        uri("directory", tmp.as_uri()),
        uri("gopher", f"gopher://127.0.0.1:{port}/x"),
        uri("ftp", "ftp://example.org/x.png"),
        uri("data-uri", "data:image/png;base64," + b64(png((8, 8)))),
        uri("idna", "http://\u00ad.example/x.png"),
        uri("bad-ipv6", "http://[::1/x.png"),
    ]


def repins(prefix: str) -> list[Record]:
    base = {"pin_id": f"{prefix}p", "board_id": f"{prefix}b", "user_id": f"{prefix}u"}
    return [
        ("repin-missing-ts", json.dumps(base).encode()),
        ("repin-overflow", json.dumps({**base, "ts": "9999-12-31T23:59:59-12:00"}).encode()),
        ("repin-garbage", b"\xff\xfe\x00"),
    ]


def model_updates(registry: Path, elsewhere: Path, good_sha: str) -> list[Record]:
    """Updates the worker must refuse; `good_sha` is v1's real manifest hash."""

    def update(kind: str, **fields: Any) -> Record:
        value = {
            "schema_version": 1,
            "version": 1,
            "registry_uri": f"{registry}/v1",
            "manifest_sha256": good_sha,
            "stage": "candidate",
            **fields,
        }
        return kind, json.dumps(value).encode()

    return [
        update("unknown-version", version=99, registry_uri=f"{registry}/v99"),
        update("foreign-registry", version=2, registry_uri=f"{elsewhere}/v2"),
        update("ssrf-registry", version=2, registry_uri="http://169.254.169.254/v2"),
        update("dotdot-registry", version=2, registry_uri=f"{registry}/../elsewhere/v2"),
        update("forged-hash", version=2, registry_uri=f"{registry}/v2", manifest_sha256="0" * 64),
        ("update-garbage", b"\x00\x01"),
    ]
