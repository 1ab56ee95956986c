"""The container side without an engine: image contents decided by pyproject extras, the
engine's bookkeeping, the names it exports, and the Testcontainers fixture rules."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pinclip.services import engine, engine_health, engine_images, fixtures

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "dev.yml"


def _requirements(extras: str, extras_only: bool = False) -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "requirements", ROOT / "compose" / "requirements.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = [e for e in extras.split(",") if e]
    return list(module.requirements(pyproject, names, extras_only))


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~! ]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize("extras", ["cpu", "gpu", "gpu-cuda"])
def test_serving_images_have_no_torch(extras: str) -> None:
    names = _names(_requirements(extras))
    assert not names & {"torch", "transformers", "torchvision"}
    assert len(names & {"onnxruntime", "onnxruntime-gpu"}) == 1


def test_trainer_layer_adds_torch_on_top_of_serving() -> None:
    assert {"torch", "transformers"} <= _names(_requirements("train", extras_only=True))
    assert "pydantic" not in _names(_requirements("train", extras_only=True))


def test_unknown_extras_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown extras: nope"):
        _requirements("cpu,nope")


def test_dockerfile_installs_dependencies_before_copying_sources() -> None:
    text = (ROOT / "compose" / "Dockerfile").read_text()
    sources = text.split("AS sources\n", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY pinclip" in sources and "RUN" not in sources
    for target in ("serving", "trainer"):
        stage = text.split(f"AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "COPY --from=sources /app /app" in stage and "pip install --no-deps" in stage
        assert "requirements" not in stage, f"{target}: dependencies belong to the deps stages"
    assert "USER pinclip" in text
    assert "ARG BASE_IMAGE" in text and "ARG EXTRAS" in text


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") + 1 :], "allow-list after ignoring everything"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not allowed & {".venv", "var", ".git", "bench", "tests"}
    copied = re.findall(
        r"^COPY (?!--from)(\S+)", (ROOT / "compose" / "Dockerfile").read_text(), re.M
    )
    assert {c.rstrip("/") for c in copied} <= allowed


def test_missing_packages_are_the_debian_ones() -> None:
    assert engine.missing_packages(lambda tool: None) == [
        "podman",
        "runc",
        "debootstrap",
        "docker-compose",
    ]
    assert engine.missing_packages(lambda tool: f"/usr/bin/{tool}") == []


def test_inventory_difference_is_what_a_session_created() -> None:
    before = engine.Inventory(frozenset({"a"}), frozenset({"podman"}), frozenset())
    after = engine.Inventory(
        frozenset({"a", "b"}), frozenset({"podman", "p_default"}), frozenset({"v"})
    )
    left = after.minus(before)
    assert (left.containers, left.networks, left.volumes) == ({"b"}, {"p_default"}, {"v"})
    assert engine.Inventory.from_json(after.to_json()) == after


def test_socket_path_fits_a_unix_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 150)
    config = engine.EngineConfig(state_dir=deep)
    assert len(str(config.socket_path())) < 100
    assert config.socket_path() != engine.EngineConfig(state_dir=tmp_path).socket_path()


def test_env_points_tools_at_the_engine_and_requires_docker_tests(tmp_path: Path) -> None:
    eng = engine.Engine(engine.EngineConfig(state_dir=tmp_path))
    env = eng.env({})
    assert env["DOCKER_HOST"] == f"unix://{eng.socket}"
    assert env["TESTCONTAINERS_RYUK_DISABLED"] == "true"
    assert env[fixtures.REQUIRE_DOCKER_VAR] == "1"
    assert Path(env["CONTAINERS_CONF"]).is_file()


def test_exported_image_names_cover_compose_and_the_fixtures() -> None:
    names = engine_images.ImageNames("localhost/pinclip-ci", "3.9.1", "5.26.12")
    env = names.env()
    compose_vars = set(re.findall(r"\$\{([A-Z0-9_]+_IMAGE):-", COMPOSE.read_text()))
    assert compose_vars <= set(env), compose_vars - set(env)
    fixture_vars = {fixtures.KAFKA_IMAGE_VAR, fixtures.NEO4J_IMAGE_VAR, fixtures.MILVUS_IMAGE_VAR}
    assert fixture_vars <= set(env)
    assert env["KAFKA_IMAGE"] == env[fixtures.KAFKA_IMAGE_VAR] == "localhost/pinclip-ci/kafka:3.9.1"
    assert all(v.startswith("localhost/") for v in env.values())


def test_standins_say_what_they_are() -> None:
    for name in ("kafka", "neo4j", "milvus", "etcd", "minio"):
        dockerfile = (ROOT / "compose" / "standins" / name / "Dockerfile").read_text()
        assert "stand-in" in dockerfile or "PLACEHOLDER" in dockerfile
        assert "not the" in dockerfile or "PLACEHOLDER" in dockerfile


def test_healthchecks_run_often_while_starting_and_rarely_once_healthy() -> None:
    assert engine_health.due("starting", None, 100.0, 5.0)
    assert not engine_health.due("starting", 98.0, 100.0, 5.0)
    assert engine_health.due("unhealthy", 94.0, 100.0, 5.0)
    assert not engine_health.due("healthy", 94.0, 100.0, 5.0)
    assert engine_health.due("healthy", 80.0, 100.0, 5.0)


def test_generated_passwords_are_safe_for_neo4j_admin() -> None:
    passwords = [fixtures.new_password() for _ in range(2000)]
    assert all(len(p) >= 8 and not p.startswith("-") for p in passwords)
    assert len(set(passwords)) == len(passwords)


def test_image_overrides_apply_when_containers_are_forced() -> None:
    """`force_container` ignores the service variable, never the image override."""

    class Refused(Exception):
        pass

    def never(*args: Any, **kwargs: Any) -> bool:
        raise Refused

    env = {"PINCLIP_KAFKA_BOOTSTRAP": "127.0.0.1:1", fixtures.KAFKA_IMAGE_VAR: "local/kafka:x"}
    assert fixtures.kafka_bootstrap(env).source == "env"
    with pytest.raises(Refused):
        fixtures.kafka_bootstrap(env, docker=never, force_container=True)
    assert fixtures.image(fixtures.KAFKA_IMAGE_VAR, env) == "local/kafka:x"


class _FailingContainer:
    image = "local/broken:1"

    def __init__(self) -> None:
        self.stopped = False

    def start(self) -> None:
        raise TimeoutError("never became ready")

    def stop(self) -> None:
        self.stopped = True


def test_a_container_whose_start_fails_is_removed() -> None:
    container = _FailingContainer()
    with pytest.raises(TimeoutError):
        fixtures._from_container(container, lambda c: None)
    assert container.stopped


def test_the_docker_context_is_where_testcontainers_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Colima, rootless Docker, a remote engine: `docker context use` is honoured without
    DOCKER_HOST, and DOCKER_HOST still wins over it."""
    from docker.context import Context

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "config.json").write_text('{"currentContext": "colima"}')  # first: it locates
    Context("colima", host="unix:///tmp/colima-test.sock").save()  # the contexts directory
    assert str(fixtures.docker_host()).endswith("unix:///tmp/colima-test.sock")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/explicit.sock")
    assert fixtures.docker_host() == "unix:///tmp/explicit.sock"


class _SlowToRemove(_FailingContainer):
    """The engine refuses the first removal (the container is still exiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def stop(self) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise RuntimeError("container state improper")
        self.stopped = True


def test_a_refused_removal_is_retried() -> None:
    container = _SlowToRemove()
    with pytest.raises(TimeoutError):
        fixtures._from_container(container, lambda c: None)
    assert container.stopped and container.attempts == 2
