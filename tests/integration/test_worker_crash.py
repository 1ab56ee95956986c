"""An exception that escapes an agent stops the worker process instead of letting Faust restart
the agent and commit past the unacked batch (faust 0.15.3 `Consumer._new_offset`: a gap of one
offset is committed over). Nothing is killed: the agent raises, the process must exit non-zero
with the batch's offset uncommitted, and a restarted worker replays it."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import forget_stream_run
from kafka import KafkaConsumer, TopicPartition

from streams.config import WorkerConfig, write_private
from streams.producer import EventProducer
from streams.runner import StreamProgress, WorkerProcess
from streams.synthetic import SyntheticStream

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUGGY = (sys.executable, str(Path(__file__).with_name("buggy_worker.py")))


def committed(config: WorkerConfig) -> int | None:
    consumer = KafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap,
        group_id=config.consumer_group,
        enable_auto_commit=False,
    )
    try:
        return consumer.committed(TopicPartition(config.topics.created, 0))
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s}s: {what}")


@pytest.fixture
def crash_setup(
    export_tiny_model: Callable[..., int],
    worker_config: Callable[..., WorkerConfig],
    tmp_path: Path,
) -> Iterator[tuple[WorkerConfig, SyntheticStream]]:
    tag = "crash" + uuid.uuid4().hex[:8]
    export_tiny_model(tmp_path / "registry", 1)
    config = worker_config(tag, str(tmp_path / "milvus.db"), tmp_path, batch_max=4)
    try:
        yield config, SyntheticStream(f"{tag}-", tmp_path / "images", seed=5)
    finally:
        forget_stream_run(config, tag)


def test_an_agent_that_raises_exits_the_worker_without_committing_its_batch(
    crash_setup: tuple[WorkerConfig, SyntheticStream],
) -> None:
    config, gen = crash_setup
    first, later = list(gen.new_pins(3)), list(gen.new_pins(2))
    crash = next(gen.new_pins(1)).model_copy(update={"pin_id": f"{gen.prefix}x-crash-me"})
    with (
        StreamProgress(config) as progress,
        EventProducer(config.kafka_bootstrap, config.topics) as producer,
    ):
        buggy = WorkerProcess(config, command=BUGGY).start()
        try:
            producer.send_many(first)
            producer.flush()
            assert progress.wait_until(lambda p: len(p.embedded) >= 3, 120), buggy.log_path
            wait_for(lambda: committed(config) == 3, 30, "offset 3 committed")
            producer.send(crash)  # offset 3: its batch raises in the agent
            producer.flush()
            time.sleep(2.0)  # the crash batch is taken alone; these come after it
            producer.send_many(later)  # offsets 4, 5
            producer.flush()
            code = buggy.wait(90)
            assert code is not None, "the worker kept running after its agent raised"
            assert code != 0
            assert committed(config) == 3  # the failed batch (and what follows) not skipped
        finally:
            buggy.kill()
        progress.poll(2.0)
        assert "a simulated bug" in buggy.log_path.read_text()
        assert later[0].pin_id not in progress.embedded  # the agent was not restarted
        with WorkerProcess(config):  # the real worker replays from the last commit
            everything = {p.pin_id for p in [*first, crash, *later]}
            assert progress.wait_until(lambda p: everything <= set(p.embedded), 120)
        wait_for(lambda: committed(config) == 6, 30, "offset 6 committed after the replay")


def test_a_configuration_error_fails_fast_in_one_line(
    worker_config: Callable[..., WorkerConfig], tmp_path: Path
) -> None:
    config = worker_config("cfg" + uuid.uuid4().hex[:8], str(tmp_path / "m.db"), tmp_path)
    path = write_private(tmp_path / "worker.json", config.to_json())
    import subprocess

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pinclip.worker", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "configuration error: no model version" in done.stderr
    assert time.monotonic() - started < 30
