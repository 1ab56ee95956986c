"""`python -m pinclip.worker CONFIG.json [LEVEL]`: one worker process from an explicit config.

The process entry point of the stream: it builds the stores and encoders with the one factory
(`pinclip.factory`) and runs the Faust worker (`streams.app.run_worker`: a configuration error
exits 2 in one line, an escaping exception exits 1). `pinclip worker` is the same from
PINCLIP_* settings; `streams.runner.WorkerProcess` starts this module (tests, benchmarks, demo).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pinclip.factory import Factory
from streams.app import configure_json_logs, run_worker
from streams.config import WorkerConfig
from streams.worker import PinWorker


def run(config: WorkerConfig, loglevel: str = "WARNING", worker: PinWorker | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM; `worker` (e.g. a test's subclass) must use a factory."""
    run_worker(config, loglevel, worker, Factory.from_worker_config(config))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = WorkerConfig.from_json(Path(args[0]).read_text(encoding="utf-8"))
    configure_json_logs(args[1] if len(args) > 1 else "INFO")
    run(config)


if __name__ == "__main__":
    main()
