"""A worker with a simulated bug, for tests/integration/test_worker_crash.py:
`python buggy_worker.py CONFIG.json` runs the real Faust app around a PinWorker whose new-pin
path (its first stage, which the agent's pipeline runs) raises KeyError for any batch holding a
pin whose id ends in "-crash-me"."""

from __future__ import annotations

import sys
from pathlib import Path

from pinclip.factory import Factory
from pinclip.worker import run
from streams.app import configure_json_logs
from streams.config import WorkerConfig
from streams.new_pins import Prepared, Submission
from streams.worker import PinWorker


class BuggyWorker(PinWorker):
    async def prepare_new_pins(self, submissions: list[Submission]) -> Prepared:
        records = [record for submission in submissions for record in submission.records]
        if any(b'-crash-me"' in (record.value or b"") for record in records):
            raise KeyError("a simulated bug in the new-pin handler")
        return await super().prepare_new_pins(submissions)


if __name__ == "__main__":
    config = WorkerConfig.from_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    configure_json_logs("INFO")
    run(config, worker=BuggyWorker(config, factory=Factory.from_worker_config(config)))
