"""Running the API under uvicorn: the `pinclip api` command and the end of `pinclip demo`."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import uvicorn

from pinclip.api.wiring import create_api_from_settings
from pinclip.settings import Settings
from streams.config import WorkerConfig


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    # Our AccessMiddleware writes the structured access log; uvicorn's own would double it.
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None)


def serve(settings: Settings, host: str, port: int, **config_overrides: Any) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM: graceful)."""
    app = create_api_from_settings(settings, **config_overrides)
    uvicorn.Server(uvicorn_config(app, host, port)).run()


class BackgroundServer:
    """uvicorn in a thread, for tests, the benchmark and callers that keep their own loop."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, host, port))
        self._thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        sockets = [s for server in self.server.servers for s in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)


def free_port_or(host: str, port: int) -> int:
    """`port` when it can be bound on `host`, else 0 (the OS picks one)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


def serve_gallery_until_interrupted(settings: Settings, worker_config: WorkerConfig) -> None:
    """The end of `pinclip demo`: the API and gallery over what the demo's worker just wrote
    (its Milvus, registry, topics and image roots), until Ctrl-C."""
    from rich.console import Console

    from pinclip.api.wiring import build_deps

    local = settings.model_copy(
        update={
            "milvus_uri": worker_config.milvus_uri,
            "registry_url": worker_config.registry_url,
            "state_dir": worker_config.state_dir,
        }
    )
    deps = build_deps(
        local, topic_embedded=worker_config.topics.embedded, fetch_policy=worker_config.fetch
    )
    app = create_api_from_settings(local, deps=deps)
    port = free_port_or(settings.api_host, settings.api_port)
    console = Console()
    with BackgroundServer(app, settings.api_host, port) as server:
        console.print(
            f"\n  [bold]gallery:[/bold] {server.url}/   (API reference: {server.url}/docs)"
        )
        console.print("  Ctrl-C stops the API (and the services this demo started).")
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it like Ctrl-C
        try:
            while server.alive:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("  stopping the API")
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
