"""Who writes new pins into a model version: the backfill's no-pin-left-behind rule.

A worker takes a candidate up in two steps (streams.worker): it *prepares* it — loads the model
and creates `pins_v<N+1>` — and then *commits* it, after which every batch is written to both
versions. A batch written between the two goes to the live collection only. So "the candidate's
collection exists" does not mean "new pins reach it": a backfill that starts then pages Neo4j in
pin_id order, and a pin written meanwhile behind its cursor would be missing from `pins_v<N+1>`
when the alias moves.

The rule: a backfill reads the graph only once **every member of the workers' consumer group**
writes the candidate. Each worker marks the collection once it has committed the candidate (a
collection property, `VectorStore.mark_writer`), under the id it also gives Kafka as its client
id; the backfill compares the group's members with the marks (`GroupWriters.pending`) and waits
until none is missing. Why that holds whatever the timing:

- a member's batches before its commit reached Neo4j before the commit (the swap waits for the
  batches in flight to be written) and so before its mark: the backfill, which pages the graph
  only after every mark, reads them;
- a member's batches after its commit are written to both versions by the worker itself;
- a worker that joins the group later replays model.updates before its pin handlers open
  (streams.app), so it writes no pin before it writes the candidate too;
- a worker that left the group (dead, or fenced out) cannot commit offsets: the records of its
  unfinished batches are replayed by a member, which writes both versions.

The backfill checks again before it moves the alias, so a worker that joined during the fill
without taking the candidate up (another registry, a refused update) stops the switch instead of
losing its pins. Several workers, one or many partitions, a slow model load, a slow commit: none
of it changes the argument, and no clocks are compared.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol

import structlog

from streams.errors import classify

log = structlog.get_logger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_writer_id() -> str:
    """A worker process's id: its Kafka client id and the name of its marks. Unique per process
    (host, pid and a random part); only the characters Kafka allows in a client id."""
    host = _UNSAFE.sub("-", socket.gethostname())[:40].strip("-") or "host"
    return f"pinclip-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def pending_writers(members: Iterable[str], marked: Iterable[str]) -> list[str]:
    """Members of the group that have not marked the version yet, sorted."""
    return sorted(set(members) - set(marked))


class WriterCheck(Protocol):
    """Which stream workers do not write `version` yet (empty: all do, or none runs)."""

    def pending(self, version: int) -> list[str]: ...

    def describe(self) -> str: ...


class Marks(Protocol):
    """vector_store.VectorStore's side of it."""

    def writers(self, version: int) -> set[str]: ...


class GroupWriters:
    """The rule for the workers of one consumer group: members from Kafka, marks from Milvus."""

    def __init__(self, kafka_bootstrap: str, group: str, marks: Marks) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        self.group = group
        self.marks = marks

    def members(self) -> list[str]:
        """Client ids of the group's members now (none when no worker runs)."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap)
        try:
            described = admin.describe_groups([self.group]).get(self.group, {})
        finally:
            admin.close()
        return sorted({str(m["client_id"]) for m in described.get("members") or []})

    def pending(self, version: int) -> list[str]:
        return pending_writers(self.members(), self.marks.writers(version))

    def describe(self) -> str:
        return f"consumer group {self.group!r}"


class WritersNotReady(RuntimeError):
    """Some workers do not write the candidate: a backfill now could leave their pins behind."""

    def __init__(self, version: int, pending: list[str], where: str, waited_s: float) -> None:
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        shown = ", ".join(pending[:3]) + more
        super().__init__(
            f"{len(pending)} worker(s) of the {where} do not write v{version} yet after "
            f"{waited_s:.0f}s ({shown}): pins they write now would be missing from pins_v"
            f"{version}. Check that they loaded the candidate (their model_update_applied log "
            f"line; `pinclip publish --version {version}` announces it again), then run the "
            "backfill again: it resumes."
        )
        self.version, self.pending = version, pending


def wait_for_writers(
    check: WriterCheck,
    version: int,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once every worker writes `version`; `WritersNotReady` after `timeout_s` (0: ask
    once). Kafka or Milvus being unreachable counts as "not yet" until the deadline."""
    started = clock()
    pending: list[str] = []
    logged: list[str] | None = None
    while True:
        try:
            pending = check.pending(version)
        except Exception as exc:
            if classify(exc) != "transient":
                raise
            pending = [f"(not known: {type(exc).__name__})"]
        if not pending:
            return
        if pending != logged:
            log.info("backfill.waiting_for_writers", version=version, pending=pending)
            logged = pending
        if clock() - started >= timeout_s:
            raise WritersNotReady(version, pending, check.describe(), clock() - started)
        sleep(1.0)
