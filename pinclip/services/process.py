"""Detached child processes we can find again and stop exactly: a pid file that records the
pid together with a marker from its command line, so a recycled pid is never signalled."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    marker: str  # a string that must appear in /proc/<pid>/cmdline for the pid to be ours

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": self.pid, "marker": self.marker}))

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(pid=int(data["pid"]), marker=str(data["marker"]))
        except (OSError, ValueError, KeyError):
            return None


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes: it no longer serves anything. But a multithreaded
    # process (a JVM) whose main thread returned shows "Z" for the pid while its other threads
    # still run its shutdown (and hold its ports): it is alive while any thread is.
    states = thread_states(pid)
    return not states or any(state not in "ZX" for state in states)


def thread_states(pid: int) -> list[str]:
    """The scheduler state letter of each thread of `pid` (empty when /proc cannot tell)."""
    states = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
            states.append(stat.rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
    return states


def is_ours(record: ProcessRecord) -> bool:
    return is_alive(record.pid) and record.marker in command_line(record.pid)


def spawn(
    argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start a process in its own session (so our shell's Ctrl-C does not reach it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    wait_for_exec(proc)
    return proc.pid


def wait_for_exec(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Popen returns once the child's exec has begun, but its /proc cmdline stays empty until
    the new program's memory is set up: a readiness check in that window saw a live process
    that was "not ours" (no marker), reported it as exited and orphaned it. Wait it out."""
    deadline = time.monotonic() + timeout_s
    while not command_line(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def reap(pid: int) -> None:
    """Collect our own child's exit status if it was started by this very process."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(record: ProcessRecord, grace_s: float = 30.0) -> bool:
    """SIGTERM, wait up to `grace_s`, then SIGKILL. Returns True if the process is gone."""
    if not is_ours(record):
        return True
    log.info("stopping", pid=record.pid)
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap(record.pid)
        if not is_alive(record.pid):
            return True
        time.sleep(0.2)
    log.warning("did not stop in time, killing", pid=record.pid)
    os.kill(record.pid, signal.SIGKILL)
    for _ in range(50):
        reap(record.pid)
        if not is_alive(record.pid):
            return True
        time.sleep(0.1)
    return not is_alive(record.pid)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
