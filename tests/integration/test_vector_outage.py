"""A Milvus that goes away mid-life surfaces as `VectorStoreUnavailable`, within the call
deadline, and the same VectorStore works again once Milvus is back (callers retry, not rebuild).

Uses its own `milvus-lite server` process (a real gRPC Milvus endpoint) so it can be stopped
without disturbing the shared server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from vector_store import PinVector, VectorStore, VectorStoreUnavailable

pytestmark = pytest.mark.integration

DIM = 8
LITE_SERVER = Path(sys.executable).with_name("milvus-lite")


class LiteServer:
    """One `milvus-lite server` process on a fixed data dir and port, restartable."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [str(LITE_SERVER), "server", "--data-dir", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(600):  # bounded wait for the port; not a timing assertion
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError("milvus-lite server exited at start")
            time.sleep(0.1)
        raise RuntimeError("milvus-lite server did not open its port")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def lite_server(tmp_path: Path) -> Iterator[LiteServer]:
    if not LITE_SERVER.exists():
        pytest.skip("milvus-lite CLI not installed beside this interpreter")
    server = LiteServer(tmp_path / "lite-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_outage_is_retryable_and_the_store_recovers(lite_server: LiteServer) -> None:
    store = VectorStore(
        lite_server.uri, alias="outage_alias", dim=DIM, prefix="outage_v", timeout_s=3
    )
    try:
        store.ensure_version(1)
        vectors = np.random.default_rng(0).normal(size=(5, DIM)).astype(np.float32)
        when = datetime(2026, 1, 1, tzinfo=UTC)
        store.upsert(1, [PinVector(f"p{i}", vectors[i], 1, when) for i in range(5)])
        store.switch_alias(1)
        assert len(store.search(vectors[0], k=3)) == 3

        lite_server.stop()
        with pytest.raises(VectorStoreUnavailable):
            store.search(vectors[0], k=3)
        with pytest.raises(VectorStoreUnavailable):
            store.upsert(1, [PinVector("late", vectors[1], 1, when)])

        lite_server.start()
        recovered = None
        for _ in range(30):  # the caller's retry loop, bounded
            try:
                recovered = store.search(vectors[0], k=3)
                break
            except VectorStoreUnavailable:
                time.sleep(0.5)
        assert recovered is not None and recovered[0].pin_id == "p0"
        assert store.count(1) == 5
    finally:
        store.close()
