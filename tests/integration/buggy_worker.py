"""A worker with a simulated bug, for tests/integration/test_worker_crash.py:
`python buggy_worker.py CONFIG.json` runs the real Faust app around a PinWorker whose new-pin
path raises KeyError for any batch holding a pin whose id ends in "-crash-me"."""

from __future__ import annotations

import sys
from pathlib import Path

from pinclip.factory import Factory
from pinclip.worker import run
from streams.app import configure_json_logs
from streams.config import WorkerConfig
from streams.new_pins import BatchOutcome, Finish, Submission
from streams.pipelining import StagedPipeline
from streams.worker import PinWorker


class BuggyWorker(PinWorker):
    """The new-pin agent runs `new_pin_pipeline`: the bug sits in its last stage (before the
    batch is published and acked), where any exception must stop the process."""

    def new_pin_pipeline(self, finish: Finish) -> StagedPipeline[Submission]:
        async def buggy(submission: Submission, outcome: BatchOutcome) -> None:
            if any(b'-crash-me"' in (record.value or b"") for record in submission.records):
                raise KeyError("a simulated bug in the new-pin path")
            await finish(submission, outcome)

        return super().new_pin_pipeline(buggy)


if __name__ == "__main__":
    config = WorkerConfig.from_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    configure_json_logs("INFO")
    run(config, worker=BuggyWorker(config, factory=Factory.from_worker_config(config)))
