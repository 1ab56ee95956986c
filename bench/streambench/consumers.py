"""The two consumers the freshness benchmark drives: the PinCLIP worker and the peer baseline.

Both run as child processes on the same services, with their own topics, consumer group,
Milvus collection and Neo4j id prefix, and both report each pin on their own PinEmbedded topic,
so one `StreamProgress` measures either the same way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.config import WorkerConfig
from streams.runner import WorkerProcess

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """`name{label=value}` → value of every sample on a Prometheus endpoint (empty if down)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = float(sample.value)
    return samples


class Consumer:
    """A consumer child process: start, wait until ready, pid, stop."""

    name = "consumer"
    metrics_port: int | None = None

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def log_text(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def wait_ready(self, marker: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
            if marker in self.log_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s")


class PinclipWorker(Consumer):
    name = "pinclip"

    def __init__(self, config: WorkerConfig) -> None:
        self.metrics_port = free_port()
        self.config = replace(config, metrics_port=self.metrics_port)
        self.process = WorkerProcess(self.config)

    def start(self) -> None:
        self.process.start()
        self.wait_ready("worker_ready")

    @property
    def pid(self) -> int | None:
        return self.process.process.pid if self.process.process else None

    def alive(self) -> bool:
        return self.process.alive()

    def log_text(self) -> str:
        path = self.process.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.process.stop()


@dataclass
class BaselineProcess(Consumer):
    settings: dict[str, Any]
    state_dir: Path
    name: str = "baseline"

    def __post_init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.state_dir / "baseline.log"

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "baseline.json"
        config.write_text(json.dumps(self.settings))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.streambench.baseline", str(config)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready("baseline_ready")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
