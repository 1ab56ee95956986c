"""CPU seconds of processes, their threads and the whole machine, read from /proc (Linux).

The freshness benchmark runs everything on the same cores: the worker, the peer baseline, the
producer and the three services. Their CPU per pin is what decides how far the encoder can be
fed, so every process is measured from outside, as deltas between two snapshots:

- a process *tree* (the worker and its children, e.g. a decode process pool);
- the worker's threads grouped by role (the worker names them; see `streams.stages`);
- the services, found by the port they listen on (Kafka, Neo4j, Milvus);
- the machine (`/proc/stat`), which includes whatever else runs — on a shared machine, other
  people's work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def available() -> bool:
    return (PROC / "stat").is_file()


def _stat_cpu(path: Path) -> float:
    """utime + stime of a /proc/<pid>[/task/<tid>]/stat file, in seconds (0 if it is gone)."""
    try:
        text = path.read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _comm(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "?"


def children(pid: int) -> list[int]:
    """Direct children of `pid` (needs /proc/<pid>/task/*/children, Linux >= 3.5)."""
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


def process_cpu(pid: int) -> float:
    return _stat_cpu(PROC / str(pid) / "stat")


def tree_cpu(pid: int) -> float:
    """CPU of a process and every live descendant (exited children are not counted)."""
    return sum(process_cpu(p) for p in tree(pid))


def threads_by_name(pid: int) -> dict[str, float]:
    """CPU per thread name (OS `comm`) of a process tree; children count under their name."""
    totals: dict[str, float] = {}
    for index, proc in enumerate(tree(pid)):
        for task in (PROC / str(proc) / "task").glob("*"):
            name = _comm(task / "comm")
            if index > 0:
                name = f"child:{name}"
            totals[name] = totals.get(name, 0.0) + _stat_cpu(task / "stat")
    return totals


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine since boot (user+nice+system+irq+softirq+steal)."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The process listening on a local TCP port, or None (not found or not readable)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except OSError:
            continue
    return None


@dataclass
class Snapshot:
    """CPU seconds at one moment, per named source."""

    values: dict[str, float] = field(default_factory=dict)
    threads: dict[str, float] = field(default_factory=dict)

    def minus(self, earlier: Snapshot) -> Snapshot:
        return Snapshot(
            {k: v - earlier.values.get(k, 0.0) for k, v in self.values.items()},
            {k: v - earlier.threads.get(k, 0.0) for k, v in self.threads.items()},
        )


@dataclass
class CpuMeter:
    """Snapshots of the machine, named process trees and one process's threads."""

    processes: Mapping[str, Callable[[], int | None]] = field(default_factory=dict)
    threads_of: Callable[[], int | None] | None = None
    alone: frozenset[str] = frozenset()  # names measured without their children

    def snapshot(self) -> Snapshot:
        snap = Snapshot({"machine": machine_cpu()})
        for name, pid_of in self.processes.items():
            pid = pid_of()
            if not pid:
                snap.values[name] = 0.0
            else:
                snap.values[name] = process_cpu(pid) if name in self.alone else tree_cpu(pid)
        pid = self.threads_of() if self.threads_of else None
        if pid:
            snap.threads = threads_by_name(pid)
        return snap


def group_threads(cpu_by_name: Mapping[str, float], rules: Iterable[tuple[str, str]]) -> dict:
    """Sum thread CPU into groups: the first rule whose prefix matches a name wins."""
    rules = list(rules)
    grouped: dict[str, float] = {}
    for name, seconds in cpu_by_name.items():
        group = next((g for prefix, g in rules if name.startswith(prefix)), "other threads")
        grouped[group] = grouped.get(group, 0.0) + seconds
    return grouped
