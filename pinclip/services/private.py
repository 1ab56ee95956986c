"""A private, disposable set of the local services for fault tests: Kafka, Neo4j and the Milvus
server on free ports under a state dir of their own, each of which can be stopped, killed
(SIGKILL) and restarted while a test runs — without touching the shared services that other
tests and developers use.

    with PrivateServices(tmp_path / "services") as services:
        services.stop("neo4j")      # graceful; returns once the process is gone
        services.start("neo4j")     # same ports, same data; returns once it answers a query

A watchdog process stops the set if the process that started it dies without tearing it down
(a test run killed by a timeout or SIGKILL), so no private JVM outlives its test run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import structlog

from pinclip.services import manager, process
from pinclip.services.base import Service, ServiceError
from pinclip.services.config import ServicesConfig
from pinclip.services.milvus_server import bind_reusable

log = structlog.get_logger(__name__)

CONFIG_FILE = "private-services.json"
# The Milvus wrapper wipes an embedded-etcd store it cannot start on (test data only): after a
# restart that must never pass silently, because the data a fault test checks would be gone.
MILVUS_WIPE_LINE = "wiping it"


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def stable_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct ports, free now and *below the ephemeral range*.

    The services keep their ports across restarts. While one is down, a port from the ephemeral
    range can be taken by any outgoing connection — even a client's own retry towards it (a TCP
    self-connect) — and the restart would then find it busy. Ports below that range are never
    handed out as source ports."""
    rng = rng or random.Random()
    low = 20000
    high = min(ephemeral_range()[0], 32768)
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(low, high)
        sock = None if port in ports else bind_reusable(port)
        if sock is not None:
            sock.close()
            ports.append(port)
    return ports


def private_config(state_dir: Path, **overrides: object) -> ServicesConfig:
    """Ports free right now (outside the ephemeral range), state under `state_dir`; the cached
    jars are shared with `pinclip services up`."""
    kafka, controller, bolt, milvus = stable_ports(4)
    values: dict[str, object] = {
        "kafka_port": kafka,
        "kafka_controller_port": controller,
        "neo4j_bolt_port": bolt,
        "milvus_port": milvus,
        "neo4j_heap": "512m",
        "kafka_heap": "384m",
        "state_dir": state_dir.resolve(),
        **overrides,
    }
    return ServicesConfig.model_validate(values)


class PrivateServices:
    """Start, stop, kill and restart private service instances (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        names: Sequence[str] = manager.SERVICE_NAMES,
        report: Callable[[str], None] | None = None,
        *,
        config: ServicesConfig | None = None,
        **overrides: object,
    ) -> None:
        self.config = config or private_config(state_dir, **overrides)
        self.root = self.config.resolved_state_dir()
        self.services: dict[str, Service] = {
            s.name: s for s in manager.build_services(self.config, list(names))
        }
        self._report = report or (lambda message: log.info("private_services", action=message))
        self._watchdog: subprocess.Popen[bytes] | None = None

    @classmethod
    def attach(
        cls, state_dir: Path, report: Callable[[str], None] | None = None
    ) -> PrivateServices:
        """The set whose state dir is `state_dir`, started by another process (debugging: run
        a scenario against services left up, read their logs)."""
        config = ServicesConfig.model_validate_json((state_dir / CONFIG_FILE).read_text())
        return cls(state_dir, report=report, config=config)

    # --- addresses ---------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return self.services["kafka"].address()

    @property
    def neo4j_uri(self) -> str:
        return self.services["neo4j"].address()

    @property
    def milvus_uri(self) -> str:
        return self.services["milvus"].address()

    # --- the whole set -----------------------------------------------------------------------
    def up(self) -> PrivateServices:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / CONFIG_FILE).write_text(self.config.model_dump_json())
        self._watchdog = start_watchdog(self.root, os.getpid())
        manager.up(list(self.services.values()), self._report)
        return self

    def down(self, wipe: bool = True) -> list[str]:
        """Stop everything (gracefully, SIGKILL after the grace); `wipe`: delete the state dir
        (data and logs). Returns the names of services that refused to stop."""
        failed = manager.down(list(self.services.values()), self._report)
        if not failed:
            (self.root / CONFIG_FILE).unlink(missing_ok=True)  # the watchdog's cue to leave
            if wipe:
                shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
        return failed

    def __enter__(self) -> PrivateServices:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # --- one service -------------------------------------------------------------------------
    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise ServiceError(f"no private {name!r}; have {sorted(self.services)}") from None

    def is_running(self, name: str) -> bool:
        return self.service(name).is_running()

    def stop(self, name: str) -> None:
        """Graceful stop (SIGTERM, the service's own shutdown); returns once it is gone."""
        service = self.service(name)
        self._report(f"{name}: stopping")
        if not service.stop():
            raise ServiceError(f"private {name} did not stop (log: {service.log_file})")

    def kill(self, name: str) -> None:
        """SIGKILL, no shutdown at all (a crash or a pulled plug); returns once it is gone."""
        service = self.service(name)
        self._report(f"{name}: kill -9")
        pids = [r.pid for r in (service.record(), *child_records(service)) if r is not None]
        for pid in pids:
            if process.is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        # A killed JVM's main thread turns zombie before its other threads have exited and
        # closed its sockets: gone means no pid alive *and* no port still listening.
        deadline = time.monotonic() + 30
        while any(process.is_alive(pid) for pid in pids) or self._listening(service):
            for pid in pids:
                process.reap(pid)
            if time.monotonic() > deadline:
                raise ServiceError(f"private {name} survived SIGKILL: {pids}")
            time.sleep(0.1)
        service.stop()  # clears the pid files; nothing is left to signal

    def _listening(self, service: Service) -> bool:
        return any(process.port_in_use(self.config.host, port) for port in service.ports())

    def start(self, name: str) -> None:
        """Start again on the same ports and data; returns once it answers a real request."""
        service = self.service(name)
        log_offset = _size(service.log_file)
        service.start(self._report)
        service.wait_ready(self._report)
        if name == "milvus" and MILVUS_WIPE_LINE in _read_from(service.log_file, log_offset):
            raise ServiceError(
                "private milvus could not start on its data and wiped it: every row written "
                f"before the restart is gone (log: {service.log_file})"
            )

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def log_tails(self, lines: int = 40) -> str:
        """The end of every service's console log, for a failing test's report."""
        return "\n".join(
            f"--- {name} ({s.log_file}) ---\n{process.tail(s.log_file, lines)}"
            for name, s in self.services.items()
        )


def child_records(service: Service) -> list[process.ProcessRecord]:
    """Processes a service's main process started itself (the Milvus binary under its wrapper)."""
    child = process.ProcessRecord.load(service.dir / "child.json")
    return [child] if child is not None and process.is_alive(child.pid) else []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


# --- watchdog and command line ---------------------------------------------------------------
def start_watchdog(root: Path, owner_pid: int) -> subprocess.Popen[bytes]:
    """A process of its own that stops the set if `owner_pid` dies first."""
    return subprocess.Popen(
        [sys.executable, "-m", "pinclip.services.private", "watch", str(root), str(owner_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or a kill of the test's process group spares it
    )


def watch(root: Path, owner_pid: int, poll_s: float = 1.0) -> int:
    """Wait until the owner tore the set down (config file gone) or died; in the latter case
    stop every service of the set. Returns the number of services that refused to stop."""
    config_file = root / CONFIG_FILE
    while config_file.exists():
        if not process.is_alive(owner_pid):
            failed = PrivateServices.attach(root, report=lambda _: None).down()
            return len(failed)
        time.sleep(poll_s)
    return 0


def serve(root: Path) -> int:
    """Start a private set and keep it up until Ctrl-C or SIGTERM, then stop and wipe it."""
    services = PrivateServices(root, report=lambda message: print(message, flush=True))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with services:
        print(f"private services up under {services.root}", flush=True)
        for line in manager.env_lines(list(services.services.values())):
            print(line, flush=True)
        stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pinclip.services.private", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a private set in DIR, keep it up until Ctrl-C")
    up.add_argument("dir", type=Path)
    watcher = commands.add_parser("watch", help="(internal) stop DIR's set when PID dies")
    watcher.add_argument("dir", type=Path)
    watcher.add_argument("pid", type=int)
    args = parser.parse_args(argv)
    if args.command == "up":
        return serve(args.dir)
    return watch(args.dir, args.pid)


if __name__ == "__main__":
    sys.exit(main())
