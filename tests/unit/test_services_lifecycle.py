"""`pinclip services up|status|down|env` as a user sees them: a service found answering where we
would start one is used rather than refused, `down` reports a service stopped only once every
thread of it exited, and `env` points the app at the Milvus server."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinclip.services import manager, process
from pinclip.services.base import Report, Service, ServiceError
from pinclip.services.config import ServicesConfig


class ListeningService(Service):
    """A Service whose 'server' is a socket this test holds; `answering` decides the probe."""

    name = "kafka"

    def __init__(self, config: ServicesConfig, port: int, answering: bool) -> None:
        super().__init__(config)
        self.port, self.answering, self.spawned = port, answering, False

    def ports(self) -> list[int]:
        return [self.port]

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self, report: Report) -> None:
        self.spawned = True  # reaching prepare means `up` went on to start a process

    def argv(self) -> list[str]:
        return [sys.executable, "-c", "pass"]

    def probe(self) -> bool:
        return self.answering

    def env(self) -> dict[str, str]:
        return {}


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_up_uses_a_service_that_already_answers_on_its_port(
    tmp_path: Path, listening_port: int
) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path})
    service = ListeningService(config, listening_port, answering=True)
    lines: list[str] = []
    assert service.start(lines.append) is False
    assert not service.spawned
    assert lines == [f"kafka: already answering at 127.0.0.1:{listening_port} (not started here)"]
    assert service.status().state == "elsewhere"
    down: list[str] = []
    assert manager.down([service], down.append) == []
    assert down == [f"kafka: not started here; 127.0.0.1:{listening_port} answers, left running"]


def test_up_refuses_a_port_held_by_something_that_does_not_answer(
    tmp_path: Path, listening_port: int
) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path})
    service = ListeningService(config, listening_port, answering=False)
    with pytest.raises(ServiceError, match=f"port\\(s\\) \\[{listening_port}\\]"):
        service.start(lambda _: None)
    assert not service.spawned
    assert service.status().state == "stopped"


# The main thread leaves (as a JVM's does at shutdown) while another thread keeps the process
# running: the pid then reads as a zombie although the process still runs (and holds its ports).
MAIN_THREAD_EXITS_FIRST = textwrap.dedent(
    """
    import ctypes, sys, threading, time
    def linger():
        time.sleep(float(sys.argv[1]))
    threading.Thread(target=linger).start()
    print("ready", flush=True)
    ctypes.CDLL(None).pthread_exit(None)
    """
)


def test_a_process_whose_main_thread_exited_is_alive_until_its_last_thread_ends(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    child = subprocess.Popen(
        [sys.executable, "-c", MAIN_THREAD_EXITS_FIRST, "3"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while "Z" not in process.thread_states(child.pid)[:1] and time.monotonic() < deadline:
            time.sleep(0.02)
        states = process.thread_states(child.pid)
        assert "Z" in states and any(s != "Z" for s in states), (states, log.read_text())
        assert process.is_alive(child.pid)
        child.wait(timeout=30)
        assert not process.is_alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_env_points_the_app_at_the_milvus_server(tmp_path: Path) -> None:
    config = ServicesConfig.model_validate({"state_dir": tmp_path, "milvus_port": 29530})
    lines = manager.env_lines(manager.build_services(config))
    assert "export PINCLIP_MILVUS_URI=http://127.0.0.1:29530" in lines
    assert "export PINCLIP_TEST_MILVUS_SERVER_URI=http://127.0.0.1:29530" in lines
    without = ServicesConfig.model_validate({"state_dir": tmp_path, "enable_milvus": False})
    assert not any("MILVUS" in line for line in manager.env_lines(manager.build_services(without)))


def test_a_kafka_cluster_id_never_reads_as_an_option() -> None:
    from pinclip.services.kafka import new_cluster_id

    assert not any(new_cluster_id().startswith("-") for _ in range(5000))
