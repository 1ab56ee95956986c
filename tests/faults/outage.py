"""What must hold while a dependency of the worker is down, and after it is back."""

from __future__ import annotations

import time
from collections.abc import Sequence

from streams.events import Event, NewPin
from streams.runner import WorkerProcess

from .faultkit import FaultRun, wait_for


def assert_alive(worker: WorkerProcess) -> None:
    """The worker process is still running (it waits out faults; it does not exit)."""
    code = worker.process.poll() if worker.process is not None else None
    assert code is None, f"the worker exited with code {code} instead of waiting"


class Outage:
    """What must hold while a dependency is down and after it is back, for the records
    produced into the outage: `events`; `repins_wait`: repins need the store that is down."""

    def __init__(
        self, run: FaultRun, worker: WorkerProcess, events: Sequence[Event], repins_wait: bool
    ) -> None:
        self.run = run
        self.worker = worker
        self.pin_ids = {e.pin_id for e in events if isinstance(e, NewPin)}
        self.blocked = sum(1 for e in events if isinstance(e, NewPin) or repins_wait)
        self.lags: list[int] = []

    def assert_worker_up(self) -> None:
        assert_alive(self.worker)

    def hold(self, seconds: float) -> None:
        """For `seconds` (the outage): the worker stays up, none of the outage's pins is
        reported embedded, and Kafka's lag keeps at least every blocked record uncommitted."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assert_worker_up()
            self.run.progress.poll(0.5)
            early = self.pin_ids & self.run.progress.embedded.keys()
            assert not early, f"{len(early)} pins reported embedded during the outage"
            lag = self.run.lag()
            if lag is not None:
                self.lags.append(lag)
                assert lag >= self.blocked, f"lag {lag} < {self.blocked} blocked records"
            time.sleep(1.0)
        assert self.lags, "Kafka never reported the group's lag during the outage"

    def assert_drained(self) -> None:
        """After the outage: every pin of it embedded, and the group's lag back to zero."""
        wait_for(
            lambda: self.run.embedded_all(self.pin_ids) and self.run.lag() == 0,
            f"{len(self.pin_ids)} pins embedded and the lag drained after the outage "
            f"(lag during: {min(self.lags, default=None)}..{max(self.lags, default=None)})",
            every=self.assert_worker_up,
        )
