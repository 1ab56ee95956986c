"""`pinclip engine` on this machine: a private socket serves the Docker API, and stopping it
removes exactly what was created through it and the socket itself."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from pinclip.services import engine, engine_images

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_engine_serves_the_docker_api_and_down_leaves_nothing(tmp_path: Path) -> None:
    import docker

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (`pinclip engine install`)")
    base = engine_images.image_names(engine.EngineConfig()).base
    if not engine.exists("image", base):
        pytest.skip(f"{base} is not built (`pinclip engine build --no-app`)")
    messages: list[str] = []
    private = engine.Engine(engine.EngineConfig(state_dir=tmp_path / "engine"))
    private.start(messages.append)
    name = f"pinclip-engine-test-{secrets.token_hex(3)}"
    try:
        assert private.running()
        # start() returned only once the socket answered; a busy machine can be slow to answer
        client = docker.DockerClient(base_url=private.docker_host(), timeout=120)
        assert client.ping()
        client.volumes.create(name)
        client.containers.create(base, ["true"], name=name, volumes={name: {"bind": "/v"}})
        client.close()
    finally:
        left = private.stop(messages.append)
    assert name in left.volumes and len(left.containers) == 1
    assert not private.socket.exists() and not private.running()
    assert not engine.exists("container", name) and not engine.exists("volume", name)
