"""The coordinator of a distributed backfill: plan, run the group, move the alias once.

    ReembedGroup(config, version, vectors, GroupOptions(workers=3)).run()

1. The candidate's collection exists and every stream worker writes it too (streams.writers:
   live new pins reach the new version while it fills, or they would be left behind).
2. The plan: the latest `Planned` on the progress topic if there is one (a rerun resumes), else
   a new one (`planner.publish_plan`).
3. `workers` members of the group start here as child processes (`python -m
   pinclip.reembed.worker`); more can join from other machines (`pinclip backfill-worker`).
4. Wait, printing progress, until every partition's committed offset reached the plan's end
   offset (`work.completion`). A member that dies is replaced by the group itself: its
   partitions move to the others after the session timeout. Only when every member started
   here has exited and the plan is still not complete does the run stop (run it again to resume).
5. Check again that every stream worker writes the version, check the row count (at least the
   pins the items embedded) and move the alias in one call.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import structlog

from pinclip.backfill import BackfillReport
from pinclip.reembed.broker import ProgressReader, ReembedTopics
from pinclip.reembed.planner import PinPages, publish_plan
from pinclip.reembed.work import Completion, Planned, completion, missing_results
from pinclip.reembed.worker import model_key
from streams.config import WorkerConfig, write_private
from streams.writers import WriterCheck, wait_for_writers
from trainer.progress import progress_bar

if TYPE_CHECKING:
    from pinclip.retrain import Fill

log = structlog.get_logger("reembed")


class BackfillStalled(RuntimeError):
    """The group stopped before the plan was complete; what is done is kept — run it again."""


class VersionTarget(Protocol):
    """vector_store.VectorStore's side of a backfill."""

    def ensure_version(self, version: int) -> object: ...

    def count(self, version: int) -> int: ...

    def switch_alias(self, version: int, expected_count: int | None = None) -> object: ...


@dataclass(frozen=True)
class GroupOptions:
    workers: int = 1  # members started here; 0: only plan, wait and switch
    item_size: int = 256  # pins per work item
    id_prefix: str = ""  # only pins whose id starts with this (tests)
    switch: bool = True
    on_switched: Callable[[int], None] | None = None
    writers: WriterCheck | None = None
    writers_timeout_s: float = 120.0
    progress: bool = True
    poll_s: float = 1.0
    loglevel: str = "INFO"


class ReembedGroup:
    def __init__(
        self,
        config: WorkerConfig,
        version: int,
        graph: PinPages,
        vectors: VersionTarget,
        options: GroupOptions | None = None,
    ) -> None:
        self.config, self.version = config, version
        self.graph, self.vectors = graph, vectors
        self.options = options or GroupOptions()
        self.topics = ReembedTopics.of(config, version)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._dir = config.state_dir / "reembed"

    def run(self) -> BackfillReport:
        v, o = self.version, self.options
        self.vectors.ensure_version(v)
        self._writers_ready()  # before the plan reads the graph
        self.topics.ensure()
        model = model_key(self.config, v)
        reader = ProgressReader(self.topics, v, model)
        try:
            planned = reader.refresh().planned
            resumed_from = f"plan {planned.plan}" if planned is not None else ""
            if planned is None:
                planned = publish_plan(self.topics, v, self.graph, item_size=o.item_size,
                                       id_prefix=o.id_prefix, model=model)  # fmt: skip
            done = self._wait(planned, reader)
        finally:
            reader.close()
            self._stop_members()
        count = self.vectors.count(v)
        log.info("reembed.filled", version=v, embedded=done.embedded, failed=done.failed,
                 collection_count=count)  # fmt: skip
        if o.switch:
            self._writers_ready()  # a stream worker that joined meanwhile writes it too
            self.vectors.switch_alias(v, expected_count=done.embedded)
            log.info("reembed.alias_switched", version=v)
            if o.on_switched is not None:
                o.on_switched(v)
        return BackfillReport(v, done.embedded, done.failed, count, o.switch, resumed_from)

    # --- steps ------------------------------------------------------------------------------

    def _writers_ready(self) -> None:
        if self.options.writers is not None:
            wait_for_writers(self.options.writers, self.version, self.options.writers_timeout_s)

    def _wait(self, planned: Planned, reader: ProgressReader) -> Completion:
        """Until the plan is complete; members start here once the plan is on the broker."""
        state = completion(planned, self.topics.committed(), reader.progress)
        if not state.complete:
            self._start_members()
        bar = progress_bar(planned.pins, enabled=self.options.progress,
                           desc=f"backfill v{self.version}", unit="pin")  # fmt: skip
        try:
            while True:
                state = completion(planned, self.topics.committed(), reader.refresh())
                bar.update(state.pins_done_estimate - bar.n)
                if state.complete:
                    break
                self._check_members(state)
                time.sleep(self.options.poll_s)
        finally:
            bar.close()
        missing = missing_results(planned, reader.refresh())
        if missing:
            raise BackfillStalled(
                f"items {missing[:10]} of plan {planned.plan} are committed without a result "
                f"on {self.topics.progress}; was the topic truncated?"
            )
        return state

    def _start_members(self) -> None:
        n = self.options.workers
        if n <= 0:
            log.info("reembed.waiting_for_members", group=self.topics.group, topic=self.topics.work)
            return
        config_path = write_private(
            self._dir / f"config-v{self.version}.json", self.config.to_json()
        )
        for i in range(n):
            out = (self._dir / f"worker-v{self.version}-{i}.log").open("ab")
            self._logs.append(out)
            command = [sys.executable, "-m", "pinclip.reembed.worker", str(config_path),
                       str(self.version), self.options.loglevel]  # fmt: skip
            self.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        log.info("reembed.members_started", workers=n, logs=str(self._dir))

    def _check_members(self, state: Completion) -> None:
        if not self.processes or any(p.poll() is None for p in self.processes):
            return
        codes = [p.returncode for p in self.processes]
        raise BackfillStalled(
            f"all {len(codes)} backfill workers exited (codes {codes}) with "
            f"{state.items - state.items_done} of {state.items} items left; their logs are in "
            f"{self._dir.name}/ under the state dir. What is done is kept: run it again to resume."
        )

    def _stop_members(self, timeout_s: float = 60.0) -> None:
        """Members exit by themselves once the plan is complete; a straggler is stopped."""
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(10)
        for out in self._logs:
            out.close()
        Path(self._dir / f"config-v{self.version}.json").unlink(missing_ok=True)


def group_fill(
    config: WorkerConfig, graph: PinPages, vectors: VersionTarget, options: GroupOptions
) -> Fill:
    """A retrain round's fill (pinclip.retrain.Fill) run by a re-embed group: the members load
    the version from the registry themselves, so the round's local copy is not needed here."""

    def fill(version: int, model_dir: Path, on_switched: Callable[[int], None]) -> BackfillReport:
        chosen = replace(options, on_switched=on_switched, switch=True)
        return ReembedGroup(config, version, graph, vectors, chosen).run()

    return fill
