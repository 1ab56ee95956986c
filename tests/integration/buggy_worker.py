"""A worker with a simulated bug, for tests/integration/test_worker_crash.py:
`python buggy_worker.py CONFIG.json` runs the real Faust app around a PinWorker whose new-pin
handler raises KeyError for any batch holding a pin whose id ends in "-crash-me"."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pinclip.factory import Factory
from pinclip.worker import run
from streams.app import configure_json_logs
from streams.config import WorkerConfig
from streams.pipeline import SourceRecord
from streams.worker import BatchOutcome, PinWorker


class BuggyWorker(PinWorker):
    async def handle_new_pins(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        if any(b'-crash-me"' in (record.value or b"") for record in records):
            raise KeyError("a simulated bug in the new-pin handler")
        return await super().handle_new_pins(records)


if __name__ == "__main__":
    config = WorkerConfig.from_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    configure_json_logs("INFO")
    run(config, worker=BuggyWorker(config, factory=Factory.from_worker_config(config)))
