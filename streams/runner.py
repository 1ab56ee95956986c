"""Driving the pipeline from Python: start a worker subprocess, follow its output topics.

For the demo, the e2e test and the benchmark:

    config = WorkerConfig(...)
    with WorkerProcess(config) as worker, StreamProgress(config) as progress:
        EventProducer(config.kafka_bootstrap, config.topics).send_many(pins)
        progress.wait_until(lambda p: len(p.embedded) >= n, timeout_s=120)
        print(progress.summary())
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from streams.config import WorkerConfig, write_private
from streams.events import DeadLetter, PinEmbedded


class WorkerProcess:
    """A worker as a child process (its own event loop and signals): the application's entry
    point, `python -m pinclip.worker CONFIG.json`, which builds the stores with its factory."""

    def __init__(
        self,
        config: WorkerConfig,
        log_path: Path | None = None,
        command: Sequence[str] = (sys.executable, "-m", "pinclip.worker"),
    ) -> None:
        """`command` + CONFIG.json is what runs (a test may run its own script instead)."""
        self.config = config
        self.command = tuple(command)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = config.state_dir / f"worker-{config.consumer_group}.json"
        self.log_path = log_path or config.state_dir / f"worker-{config.consumer_group}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        # The config holds the store credentials: owner-only, and deleted when the worker ends.
        write_private(self.config_path, self.config.to_json())
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.command, str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM: Faust commits acked offsets), SIGKILL if it hangs."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._cleanup()
        return self.process.returncode

    def kill(self) -> None:
        """Crash on purpose (SIGKILL): nothing is committed beyond what was acked."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._cleanup()

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the worker to exit by itself; its exit status, or None if it still runs."""
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._cleanup()
        return code

    def wait_logged(self, event: str, timeout_s: float, **fields: Any) -> dict[str, Any]:
        """The first JSON log line of `event` whose fields include `fields` (e.g.
        `wait_logged("model_update_applied", 60, version=2)`: the worker applied the update).
        AssertionError if the worker exits or nothing matches within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if f'"{event}"' not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == event and fields.items() <= record.items():
                    return dict(record)
            assert self.alive(), f"the worker exited before logging {event} {fields}"
            time.sleep(0.2)
        raise AssertionError(f"the worker did not log {event} {fields} within {timeout_s}s")

    def _cleanup(self) -> None:
        self.config_path.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StreamProgress:
    """Reads pins.embedded and pins.dlq (no consumer group) and keeps counts and latencies."""

    def __init__(self, config: WorkerConfig, from_beginning: bool = True) -> None:
        self.topics = config.topics
        self._consumer = KafkaConsumer(
            bootstrap_servers=config.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        self._from_beginning = from_beginning
        self._assigned: set[str] = set()
        self.embedded: dict[str, PinEmbedded] = {}
        self.embedded_records = 0  # counts replays too
        self.dead: list[DeadLetter] = []
        self.latencies_ms: list[float] = []
        self.started = time.monotonic()

    def _assign(self) -> None:
        wanted = [self.topics.embedded, self.topics.dlq]
        partitions = []
        for topic in wanted:
            for p in self._consumer.partitions_for_topic(topic) or ():
                partitions.append(TopicPartition(topic, p))
        names = {tp.topic for tp in partitions}
        if names != self._assigned and partitions:
            self._consumer.assign(partitions)
            if self._from_beginning:
                self._consumer.seek_to_beginning(*partitions)
            self._assigned = names

    def poll(self, timeout_s: float = 0.5) -> int:
        """Consume what is available; returns the number of records read."""
        if len(self._assigned) < 2:
            self._assign()
            if not self._assigned:
                time.sleep(timeout_s)
                return 0
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        count = 0
        for tp, records in batches.items():
            for record in records:
                count += 1
                if tp.topic == self.topics.embedded:
                    event = PinEmbedded.model_validate_json(record.value)
                    self.embedded[event.pin_id] = event
                    self.embedded_records += 1
                    self.latencies_ms.append(event.latency_ms)
                else:
                    self.dead.append(DeadLetter.model_validate_json(record.value))
        return count

    def wait_until(
        self, done: Callable[[StreamProgress], bool], timeout_s: float, on_tick: Any = None
    ) -> bool:
        """Poll until `done(self)` or the timeout; `on_tick(self)` after every poll."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if on_tick is not None:
                on_tick(self)
            if done(self):
                return True
        return done(self)

    def quantiles_ms(self, since: int = 0) -> dict[str, float]:
        values = self.latencies_ms[since:]
        if not values:
            return {"p50": float("nan"), "p99": float("nan")}
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50": float(p50), "p99": float(p99)}

    def summary(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        reasons: dict[str, int] = {}
        for letter in self.dead:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        return {
            "embedded": len(self.embedded),
            "per_s": round(len(self.embedded) / elapsed, 1) if elapsed > 0 else 0.0,
            "dead_letters": len(self.dead),
            "dlq_by_reason": reasons,
            **{k: round(v, 1) for k, v in self.quantiles_ms().items()},
        }

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> StreamProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
