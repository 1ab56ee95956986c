"""`python -m pinclip.worker CONFIG.json [LEVEL]`: one worker process from an explicit config.

The process entry point of the stream: it builds the stores and encoders with the one factory
(`pinclip.factory`) and runs the Faust worker (`streams.app.run_worker`). `pinclip worker` is
the same from PINCLIP_* settings; `streams.runner.WorkerProcess` starts this module (tests,
benchmarks, the demo).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

from pinclip.factory import Factory
from streams.app import run_worker
from streams.config import WorkerConfig


def run(config: WorkerConfig, loglevel: str = "WARNING") -> None:
    run_worker(config, Factory.from_worker_config(config), loglevel=loglevel)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = WorkerConfig.from_json(Path(args[0]).read_text(encoding="utf-8"))
    level = args[1] if len(args) > 1 else "INFO"
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
    )
    run(config)


if __name__ == "__main__":
    main()
