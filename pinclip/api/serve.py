"""Running the API under uvicorn: the `pinclip api` command and the end of `pinclip demo`."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from pinclip.api.wiring import create_api_from_settings


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    # Our AccessMiddleware writes the structured access log; uvicorn's own would double it.
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None)


def serve(settings: Any, host: str, port: int, **config_overrides: Any) -> None:
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
