"""compose/dev.yml end to end on a real engine: `up` with two workers and the demo profile,
bootstrap registers v1, events produced from the host become searchable through the API, Neo4j
holds their graph, the two workers share the partitions, and `down -v` leaves nothing behind.

Images come from the environment (`pinclip engine env` points KAFKA_IMAGE, SERVING_IMAGE, ...
at locally built stand-ins); without those variables compose builds the app images and pulls
the upstream ones. Host ports are free ports, never the shared services' 9092/7687/19530.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pinclip.services import fixtures
from pinclip.services.milvus_server import free_port

pytestmark = [
    pytest.mark.compose,
    pytest.mark.docker,
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "dev.yml"
WORKERS = 2
PINS = 24


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    compose: list[str]
    client: Any  # docker.DockerClient

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        argv = [*self.compose, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        result = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def containers(self, service: str | None = None) -> list[Any]:
        labels = [f"com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return list(self.client.containers.list(all=True, filters={"label": labels}))

    def port(self, name: str) -> int:
        return int(self.env[name])

    def api(self, path: str) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port('API_HOST_PORT')}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail=40", check=False, timeout=120)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2.0)
    raise AssertionError(f"timed out waiting for {what}\n{stack.logs()}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not fixtures.docker_available():
        pytest.skip("no Docker engine answers (DOCKER_HOST, Docker context or tc.host)")
    import docker

    host = fixtures.docker_host()
    client = docker.DockerClient(base_url=host) if host else docker.from_env()
    env = {
        **os.environ,
        "KAFKA_HOST_PORT": str(free_port()),
        "NEO4J_BOLT_HOST_PORT": str(free_port()),
        "MILVUS_HOST_PORT": str(free_port()),
        "API_HOST_PORT": str(free_port()),
        "NEO4J_PASSWORD": fixtures.new_password(),
        "BOOTSTRAP_PINS": "240",
        "BOOTSTRAP_STEPS": "20",
        "BOOTSTRAP_MODEL": "tiny",
        "DEMO_PINS": "40",
        "RETRAIN_MIN_PINS": "1000000",  # retrain must wait (and not train) during the test
    }
    if host:
        env["DOCKER_HOST"] = host
    built = "SERVING_IMAGE" in env and "TRAINER_IMAGE" in env
    stack = Stack(f"pinclip-e2e-{secrets.token_hex(3)}", env, compose_command(), client)
    try:
        stack.run(
            "--profile",
            "demo",
            "up",
            "-d",
            "--no-build" if built else "--build",
            "--scale",
            f"worker={WORKERS}",
            timeout=1800,
        )
        yield stack
    finally:
        stack.run("--profile", "demo", "down", "-v", "--remove-orphans", check=False)
        client.close()


def exit_code(container: Any) -> int | None:
    container.reload()
    if container.status in {"exited", "dead"}:
        return int(container.attrs["State"]["ExitCode"])
    return None


def test_bootstrap_registers_the_first_model(stack: Stack) -> None:
    (bootstrap,) = stack.containers("bootstrap")
    wait_for("bootstrap to exit", lambda: exit_code(bootstrap) is not None, 900, stack)
    assert exit_code(bootstrap) == 0, bootstrap.logs(tail=40).decode(errors="replace")
    assert b"registered v1" in bootstrap.logs()


def test_serving_image_has_no_torch(stack: Stack) -> None:
    worker = stack.containers("worker")[0]
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
    result = worker.exec_run(["python", "-c", probe])
    assert result.exit_code == 0, "torch is importable in the serving image"


@pytest.fixture(scope="module")
def produced(stack: Stack) -> list[str]:
    """Pins produced from the host once the API serves a live model."""
    from streams.producer import EventProducer

    wait_for(
        "the API to be ready (live model loaded)", lambda: stack.api("/ready")[0] == 200, 600, stack
    )
    prefix = f"e2e{secrets.token_hex(3)}-"
    pins, repins = _inline_events(prefix)
    with EventProducer(f"127.0.0.1:{stack.port('KAFKA_HOST_PORT')}") as producer:
        for event in [*pins, *repins]:
            producer.send(event)
        producer.flush()
    return [p.pin_id for p in pins]


def _inline_events(prefix: str) -> tuple[list[Any], list[Any]]:
    import random

    from streams.events import NewPin
    from streams.synthetic import THEMES, draw_image

    rng = random.Random(7)
    themes = list(THEMES)
    pins = []
    for i in range(PINS):
        theme = themes[i % len(themes)]
        words = THEMES[theme][1]
        pins.append(
            NewPin.with_inline_image(
                draw_image(theme, rng),
                pin_id=f"{prefix}p{i:03d}",
                board_id=f"{prefix}b-{theme}",
                user_id=f"{prefix}u{i % 5}",
                title=f"{words[0].title()} {words[1]} ideas",
                description=f"A {theme} pin about {words[0]}.",
                created_at="2026-11-26T12:00:00Z",
            )
        )
    from streams.events import Repin

    repins = [
        Repin(
            pin_id=f"{prefix}p{i:03d}",
            board_id=f"{prefix}b-extra-{i % 3}",
            user_id=f"{prefix}u9",
            ts="2026-11-26T12:00:05Z",
        )
        for i in range(0, PINS, 2)
    ]
    return pins, repins


def test_host_events_become_searchable_through_the_api(stack: Stack, produced: list[str]) -> None:
    def all_searchable() -> bool:
        return all(stack.api(f"/pins/{pin_id}/similar?k=5")[0] == 200 for pin_id in produced)

    wait_for("every produced pin to be searchable", all_searchable, 300, stack)
    status, body = stack.api(f"/pins/{produced[0]}/similar?k=5")
    assert status == 200 and body["results"], body
    assert all(isinstance(hit["score"], float) for hit in body["results"])
    assert body["model_version"] == 1


def test_neo4j_holds_the_graph(stack: Stack, produced: list[str]) -> None:
    from neo4j import GraphDatabase

    prefix = produced[0].split("p", 1)[0]
    uri = f"bolt://127.0.0.1:{stack.port('NEO4J_BOLT_HOST_PORT')}"
    query = (
        "MATCH (p:Pin) WHERE p.pin_id STARTS WITH $prefix "
        "OPTIONAL MATCH (p)-[s]->(:Board) RETURN count(DISTINCT p) AS pins, count(s) AS saves"
    )
    with GraphDatabase.driver(uri, auth=("neo4j", stack.env["NEO4J_PASSWORD"])) as driver:

        def complete() -> bool:
            records, _, _ = driver.execute_query(query, prefix=prefix)
            return records[0]["pins"] == PINS and records[0]["saves"] == PINS + PINS // 2

        wait_for("the graph to hold every pin and save", complete, 180, stack)


def test_two_workers_share_the_partitions(stack: Stack, produced: list[str]) -> None:
    from kafka import KafkaAdminClient

    workers = [c for c in stack.containers("worker") if c.status == "running"]
    assert len(workers) == WORKERS
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{stack.port('KAFKA_HOST_PORT')}")
    try:

        def shared() -> bool:
            group = admin.describe_groups(["pinclip-worker"])["pinclip-worker"]
            owned = [_created_partitions(m) for m in group.get("members", [])]
            return len(owned) == WORKERS and all(owned) and not set.intersection(*owned)

        wait_for("both workers to own pins.created partitions", shared, 120, stack)
    finally:
        admin.close()


def _created_partitions(member: dict[str, Any]) -> set[int]:
    """Partitions of pins.created in a member's decoded assignment (kafka-python to_dict form)."""
    assignment = member.get("member_assignment") or {}
    if not isinstance(assignment, dict):
        return set()
    owned: set[int] = set()
    for entry in assignment.get("assigned_partitions", []):
        if entry.get("topic") == "pins.created":
            owned.update(entry.get("partitions", []))
    return owned


def test_demo_profile_streams_pins_the_api_shows(stack: Stack) -> None:
    (demo,) = stack.containers("demo")
    wait_for("the demo to finish producing", lambda: exit_code(demo) is not None, 300, stack)
    output = demo.logs().decode(errors="replace")
    assert exit_code(demo) == 0, output
    links = re.findall(r"/pins/([^/\s]+)/similar", output)
    assert links, output
    wait_for(
        "a demo pin to be searchable",
        lambda: stack.api(f"/pins/{links[0]}/similar")[0] == 200,
        300,
        stack,
    )


def test_retrain_waits_for_a_graph_that_can_fill_a_batch(stack: Stack) -> None:
    (retrain,) = stack.containers("retrain")
    retrain.reload()
    assert retrain.status == "running"
    assert retrain.attrs["RestartCount"] == 0
    assert b"wait_graph.waiting" in retrain.logs()


def test_down_leaves_nothing_behind(stack: Stack) -> None:
    """Containers, the network, named volumes and the anonymous volumes images declare."""
    mounted = {
        mount["Name"]
        for container in stack.containers()
        for mount in container.attrs.get("Mounts", [])
        if mount.get("Type") == "volume" and mount.get("Name")
    }
    assert mounted, "expected the stack's containers to mount volumes"
    stack.run("--profile", "demo", "down", "-v", "--remove-orphans")
    label = f"com.docker.compose.project={stack.project}"
    assert stack.client.containers.list(all=True, filters={"label": label}) == []
    assert stack.client.networks.list(filters={"label": label}) == []
    assert stack.client.volumes.list(filters={"label": label}) == []
    remaining = {v.name for v in stack.client.volumes.list()}
    assert mounted & remaining == set(), f"volumes left behind: {mounted & remaining}"
