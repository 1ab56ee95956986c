"""A Docker-compatible container engine for CI and for machines without Docker: Debian's podman,
configured by the project's own containers.conf (nothing in /etc changes), serving the Docker API
on a unix socket that Testcontainers and docker-compose use.

`up` installs what is missing (podman, runc, debootstrap, docker-compose from Debian), builds the
images (engine_images), records which containers, networks and volumes already exist, and starts
two processes: `podman system service` on our socket and a healthcheck driver (podman runs
healthchecks from systemd timers, which these machines lack). `down` removes what appeared
since `up` and stops exactly those two processes. Images stay: they are the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pinclip.services import process
from pinclip.services.config import default_cache_dir
from pinclip.settings import get_settings

Report = Callable[[str], None]
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "compose" / "podman" / "containers.conf"
DEBIAN_PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
COMPOSE_PACKAGE = "docker-compose"


class EngineError(RuntimeError):
    pass


class EngineConfig(BaseSettings):
    """`PINCLIP_ENGINE_*` variables; local tooling only, like `PINCLIP_SERVICES_*`."""

    model_config = SettingsConfigDict(env_prefix="PINCLIP_ENGINE_", extra="ignore")

    cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "engine",
        description="Build contexts and the Debian root file system (outside the repo).",
    )
    state_dir: Path | None = Field(
        None, description="Socket, pids and logs (default: <PINCLIP_STATE_DIR>/engine)."
    )
    image_prefix: str = Field("localhost/pinclip-ci", description="Name prefix of built images.")
    debian_suite: str = Field("bookworm", description="Debian release of the base image.")
    debian_mirror: str = Field("http://deb.debian.org/debian", description="debootstrap mirror.")
    start_timeout_s: float = Field(60.0, description="Longest wait for the socket to answer.")
    health_interval_s: float = Field(2.0, description="Healthcheck driver period.")

    def resolved_state_dir(self) -> Path:
        return (self.state_dir or get_settings().state_dir / "engine").resolve()

    def socket_path(self) -> Path:
        """Unix socket paths are limited to ~107 bytes: a short path derived from the state dir."""
        digest = hashlib.sha256(str(self.resolved_state_dir()).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"pinclip-engine-{digest}.sock"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float | None = 600) -> str:
    """Run the podman CLI with our containers.conf; returns stdout."""
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise EngineError(f"podman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def exists(kind: str, name: str) -> bool:
    """`podman image|container|volume|network exists NAME`."""
    argv = ["podman", kind, "exists", name]
    return subprocess.run(argv, env=podman_env(), capture_output=True, check=False).returncode == 0


def missing_packages(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Debian packages to install: the tools podman needs and docker-compose."""
    missing = [pkg for tool, pkg in DEBIAN_PACKAGES.items() if which(tool) is None]
    if which("docker-compose") is None:
        missing.append(COMPOSE_PACKAGE)
    return missing


def install(report: Report) -> list[str]:
    """apt-get install what is missing (we run as root on CI machines)."""
    missing = missing_packages()
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise EngineError(f"missing {', '.join(missing)} and no apt-get to install them")
    report(f"engine: installing {' '.join(missing)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return missing


@dataclass(frozen=True)
class Inventory:
    """Containers, networks and volumes by id/name: what existed before `up`."""

    containers: frozenset[str]
    networks: frozenset[str]
    volumes: frozenset[str]

    @classmethod
    def now(cls) -> Inventory:
        def lines(*args: str) -> frozenset[str]:
            return frozenset(line for line in podman(*args).split() if line)

        return cls(
            containers=lines("ps", "-a", "--no-trunc", "--format", "{{.ID}}"),
            networks=lines("network", "ls", "--format", "{{.Name}}"),
            volumes=lines("volume", "ls", "--format", "{{.Name}}"),
        )

    def to_json(self) -> str:
        return json.dumps({k: sorted(v) for k, v in vars(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        data = json.loads(text)
        return cls(**{k: frozenset(v) for k, v in data.items()})

    def minus(self, before: Inventory) -> Inventory:
        return Inventory(
            self.containers - before.containers,
            self.networks - before.networks,
            self.volumes - before.volumes,
        )


class Engine:
    """The two background processes of one engine session and the files that describe it."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.dir = config.resolved_state_dir()
        self.socket = config.socket_path()
        self.inventory_file = self.dir / "inventory.json"

    def _record(self, name: str) -> process.ProcessRecord | None:
        return process.ProcessRecord.load(self.dir / f"{name}.pid.json")

    def running(self) -> bool:
        record = self._record("service")
        return record is not None and process.is_ours(record)

    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, report: Report) -> None:
        if self.running():
            report(f"engine: already serving {self.docker_host()}")
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.inventory_file.write_text(Inventory.now().to_json())
        service = ["podman", "system", "service", "--time=0", self.docker_host()]
        self._spawn("service", service, marker=str(self.socket))
        driver = [sys.executable, "-m", "pinclip.services.engine_health", "--interval"]
        driver += [str(self.config.health_interval_s), "--marker", str(self.socket)]
        self._spawn("health", driver, marker=str(self.socket))
        self.wait_ready()
        report(f"engine: podman serving the Docker API at {self.docker_host()}")

    def _spawn(self, name: str, argv: list[str], marker: str) -> None:
        pid = process.spawn(argv, self.dir / f"{name}.log", cwd=self.dir, env=podman_env())
        process.ProcessRecord(pid=pid, marker=marker).save(self.dir / f"{name}.pid.json")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.socket.exists() and ping(self.docker_host()):
                return
            if not self.running():
                break
            time.sleep(0.3)
        log = process.tail(self.dir / "service.log")
        raise EngineError(f"podman system service did not answer on {self.socket}:\n{log}")

    def leftovers(self) -> Inventory:
        if not self.inventory_file.exists():
            return Inventory(frozenset(), frozenset(), frozenset())
        return Inventory.now().minus(Inventory.from_json(self.inventory_file.read_text()))

    def stop(self, report: Report) -> Inventory:
        """Remove what appeared since `start`, stop our two processes, remove the socket."""
        left = self.leftovers()
        for container in sorted(left.containers):
            podman("rm", "-f", "-v", container, check=False)
        for network in sorted(left.networks):
            podman("network", "rm", "-f", network, check=False)
        for volume in sorted(left.volumes):
            podman("volume", "rm", "-f", volume, check=False)
        if left.containers or left.networks or left.volumes:
            report(
                f"engine: removed leftovers: {len(left.containers)} containers, "
                f"{len(left.networks)} networks, {len(left.volumes)} volumes"
            )
        for name in ("health", "service"):
            record = self._record(name)
            if record is not None and process.stop(record, grace_s=15.0):
                (self.dir / f"{name}.pid.json").unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)
        self.inventory_file.unlink(missing_ok=True)
        report("engine: stopped")
        return left

    def env(self, images: dict[str, str]) -> dict[str, str]:
        """What tests, docker-compose and Testcontainers need to use this engine."""
        return {
            "DOCKER_HOST": self.docker_host(),
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            # podman has no Ryuk reaper; our fixtures and `down` clean up instead
            "TESTCONTAINERS_RYUK_DISABLED": "true",
            # podman's API lacks the fields Testcontainers reads to find the gateway
            "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
            "TC_HOST": "127.0.0.1",
            "PINCLIP_REQUIRE_DOCKER": "1",
            **images,
        }


def ping(docker_host: str) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=docker_host, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # not up yet: connection refused, socket missing, API error
        return False


def shell_exports(env: dict[str, str]) -> list[str]:
    import shlex

    return [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
