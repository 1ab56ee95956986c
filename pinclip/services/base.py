"""What every local service shares: a state directory, a pid record, a log, a start that waits
for REAL readiness (the client protocol answering, not just an open port) and an exact stop."""

from __future__ import annotations

import abc
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pinclip.services import process
from pinclip.services.config import ServicesConfig

Report = Callable[[str], None]


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    # "ready", "starting" (ours, not answering), "elsewhere" (not ours, answers), "stopped"
    state: str
    pid: int | None
    address: str
    log: Path


class Service(abc.ABC):
    name: str = "service"

    def __init__(self, config: ServicesConfig) -> None:
        self.config = config
        self.dir: Path = config.resolved_state_dir() / self.name
        self.pid_file = self.dir / "pid.json"
        self.log_file = self.dir / "logs" / f"{self.name}.out"
        self.last_probe_error = ""

    # --- what each service defines ------------------------------------------------------------
    @abc.abstractmethod
    def ports(self) -> list[int]: ...

    @abc.abstractmethod
    def address(self) -> str: ...

    @abc.abstractmethod
    def prepare(self, report: Report) -> None:
        """Download and configure, before the process starts (idempotent)."""

    @abc.abstractmethod
    def argv(self) -> list[str]: ...

    @abc.abstractmethod
    def probe(self) -> bool:
        """One short, real client request; True when the service answered."""

    @abc.abstractmethod
    def env(self) -> dict[str, str]: ...

    def requirements(self) -> None:  # noqa: B027 - optional hook
        """Raise ServiceError naming a missing tool."""

    def after_stop(self) -> None:  # noqa: B027 - optional hook
        """Clean up anything the main process may have left behind."""

    # --- shared behaviour ---------------------------------------------------------------------
    @property
    def marker(self) -> str:
        """Our state dir appears in every command line we start; used to recognise our pids."""
        return str(self.dir)

    def record(self) -> process.ProcessRecord | None:
        return process.ProcessRecord.load(self.pid_file)

    def is_running(self) -> bool:
        record = self.record()
        return record is not None and process.is_ours(record)

    def start(self, report: Report) -> bool:
        """Start the process unless it already runs. Returns True when a process was started."""
        if self.is_running():
            report(f"{self.name}: already running")
            return False
        self.requirements()
        if self.answers_elsewhere():
            # Started elsewhere (another checkout's state dir, a developer's own): use it as it
            # is; `down` from here leaves it alone because it is not ours.
            report(f"{self.name}: already answering at {self.address()} (not started here)")
            return False
        busy = [p for p in self.ports() if process.port_in_use(self.config.host, p)]
        if busy:
            raise ServiceError(
                f"{self.name}: port(s) {busy} on {self.config.host} are in use by another "
                f"process; stop it or choose other ports with PINCLIP_SERVICES_*_PORT "
                "(docs/services.md)."
            )
        self.prepare(report)
        report(f"{self.name}: starting")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.write_text("")
        pid = process.spawn(self.argv(), self.log_file, cwd=self.dir)
        process.ProcessRecord(pid=pid, marker=self.marker).save(self.pid_file)
        return True

    def answers_elsewhere(self) -> bool:
        """Not started from this state dir, yet its address answers a real request."""
        if self.is_running():
            return False
        return process.port_in_use(self.config.host, self.ports()[0]) and self.probe()

    def wait_ready(self, report: Report) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.probe():
                report(f"{self.name}: ready at {self.address()}")
                return
            record = self.record()
            if record is not None:
                process.reap(record.pid)
            if not self.is_running():
                raise ServiceError(
                    f"{self.name} exited before it was ready. Last log lines "
                    f"({self.log_file}):\n{self.log_tail()}"
                )
            time.sleep(0.5)
        raise ServiceError(
            f"{self.name} not ready after {self.config.start_timeout_s:.0f}s "
            f"(last probe error: {self.last_probe_error or 'none'}). Last log lines "
            f"({self.log_file}):\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return process.tail(self.log_file)

    def stop(self) -> bool:
        record = self.record()
        stopped = True
        if record is not None:
            stopped = process.stop(record, grace_s=self.stop_grace_s())
        self.after_stop()
        if stopped:
            self.pid_file.unlink(missing_ok=True)
        return stopped

    def stop_grace_s(self) -> float:
        return 30.0

    def status(self) -> ServiceStatus:
        record = self.record()
        alive = record is not None and process.is_ours(record)
        if alive:
            state = "ready" if self.probe() else "starting"
        else:
            state = "elsewhere" if self.answers_elsewhere() else "stopped"
        return ServiceStatus(
            name=self.name,
            state=state,
            pid=record.pid if alive and record else None,
            address=self.address(),
            log=self.log_file,
        )

    def wipe(self) -> None:
        """Remove the service's data (only when stopped)."""
        if self.is_running():
            raise ServiceError(f"{self.name} is running; stop it first")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Readiness probes poll while a service boots: the client's connection errors are expected
    there and would bury the progress lines. Levels are restored afterwards."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def java_or_fail() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            "java is not installed: Kafka and Neo4j need a Java 17 runtime "
            "(Debian: apt-get install -y openjdk-17-jre-headless maven)."
        )
    return java
