"""Image fetching on real files and a real local HTTP server: caps, reasons, isolation."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.content import ContentError, ContentFetcher, ContentStore, load_image_bytes
from streams.events import NewPin


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2.0)
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        body = b"x" * (5_000 if self.path == "/big" else 100)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pin(pin_id: str, **image: str) -> NewPin:
    return NewPin.model_validate(
        {
            "pin_id": pin_id,
            "board_id": "b",
            "user_id": "u",
            "title": "t",
            "created_at": datetime.now(UTC).isoformat(),
            **image,
        }
    )


async def test_fetch_many_returns_bytes_or_reason_per_pin(tmp_path: Path, http_base: str) -> None:
    small = tmp_path / "small.png"
    small.write_bytes(b"s" * 10)
    large = tmp_path / "large.png"
    large.write_bytes(b"l" * 2_000)
    fetcher = ContentFetcher(max_bytes=1_000, timeout_s=1.0)
    pins = [
        pin("file", image_uri=small.as_uri()),
        pin("file_large", image_uri=large.as_uri()),
        pin("file_missing", image_uri=(tmp_path / "nope.png").as_uri()),
        pin("http", image_uri=f"{http_base}/ok"),
        pin("http_big", image_uri=f"{http_base}/big"),
        pin("http_404", image_uri=f"{http_base}/missing"),
        pin("http_slow", image_uri=f"{http_base}/slow"),
        pin("refused", image_uri="http://127.0.0.1:9/x"),
        pin("inline", image_b64=base64.b64encode(b"inline").decode()),
        pin("inline_bad", image_b64="%%%notbase64"),
        pin("inline_big", image_b64=base64.b64encode(b"i" * 1_001).decode()),
    ]
    try:
        results = await fetcher.fetch_many(pins)
    finally:
        await fetcher.aclose()
    outcome = {
        p.pin_id: (r.reason if isinstance(r, ContentError) else r)
        for p, r in zip(pins, results, strict=True)
    }
    assert outcome == {
        "file": b"s" * 10,
        "file_large": "too_large",
        "file_missing": "unreachable",
        "http": b"x" * 100,
        "http_big": "too_large",
        "http_404": "unreachable",
        "http_slow": "timeout",
        "refused": "unreachable",
        "inline": b"inline",
        "inline_bad": "bad_base64",
        "inline_big": "too_large",
    }


def test_content_store_is_content_addressed_and_loadable(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "content"))
    first = store.put(b"image-bytes")
    again = store.put(b"image-bytes")
    other = store.put(b"other")
    assert first == again != other
    assert first.startswith("file://")
    assert load_image_bytes(first) == b"image-bytes"
    assert len(list((tmp_path / "content").rglob("*"))) == 4  # two shard dirs + two files


def test_load_image_bytes_reports_reasons(tmp_path: Path, http_base: str) -> None:
    with pytest.raises(ContentError) as missing:
        load_image_bytes((tmp_path / "gone").as_uri())
    assert missing.value.reason == "unreachable"
    assert load_image_bytes(f"{http_base}/ok") == b"x" * 100
    with pytest.raises(ContentError) as big:
        load_image_bytes(f"{http_base}/big", max_bytes=10)
    assert big.value.reason == "too_large"
