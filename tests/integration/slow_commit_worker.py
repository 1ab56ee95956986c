"""A worker that is slow to commit a candidate, for tests/integration/test_backfill_writers.py:
`python slow_commit_worker.py CONFIG.json` runs the real Faust app and PinWorker, whose vector
store creates a candidate's collection (what preparing it does) and then holds the update there
until the file `<state_dir>/release-commit` exists. Meanwhile new pins keep flowing — to the live
version only, as they do in any worker between preparing a candidate and committing it (a slow
model load on another worker, a swap waiting for a long batch)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pinclip.factory import Factory
from pinclip.worker import run
from streams.app import configure_json_logs
from streams.config import WorkerConfig
from streams.worker import PinWorker


class HoldsCandidates:
    """The real VectorStore; ensure_version of a version after the first returns only once the
    release file exists."""

    def __init__(self, store: Any, release: Path) -> None:
        self._store, self._release = store, release
        self._first: int | None = None

    def ensure_version(self, version: int) -> str:
        name = str(self._store.ensure_version(version))
        self._first = self._first or version
        while version != self._first and not self._release.exists():
            time.sleep(0.1)
        return name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SlowCommitFactory(Factory):
    release = Path()

    def vector_store(self, dim: int | None = None, **options: Any) -> Any:
        return HoldsCandidates(super().vector_store(dim, **options), self.release)


if __name__ == "__main__":
    config = WorkerConfig.from_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    configure_json_logs("INFO")
    factory = SlowCommitFactory.from_worker_config(config)
    factory.release = config.state_dir / "release-commit"
    run(config, worker=PinWorker(config, factory=factory))
