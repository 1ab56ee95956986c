"""The route table: every topic the worker reads or writes, the event on it, and its handler.

The app (its agents, the topics it declares, the lag it reports), the producer (which topic an
event goes to), topic creation and catch-up (which topics are inputs, which outputs) all read
`ROUTES`, so none of them lists topics or event types of its own. A new event type touches:
its model (`streams/events.py`), its topic name (a `Topics` field, with its setting), one
`Route` here, and its handler on `PinWorker` — which `tests/unit/test_routes.py` checks exists.

The backfill's work topics (`<reembed>.v<N>`) are not routes: a re-embed group creates and
reads them itself (pinclip.reembed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from streams.config import Topics
from streams.events import DeadLetter, Event, ModelUpdate, NewPin, PinEmbedded, Repin


class Delivery(StrEnum):
    """How the worker consumes a topic (or that it only produces it)."""

    # One record at a time into the staged embed-and-write pipeline: `handler(finish)` returns
    # the pipeline the agent submits to (streams.pipelining).
    PIPELINED = "pipelined"
    # Batches taken from the stream: `await handler(records) -> BatchOutcome`, acked after.
    BATCHED = "batched"
    # Every worker reads every record, without a group, from the start (one partition: order).
    BROADCAST = "broadcast"
    # Written by the worker, read by others (catch-up, the benchmarks, downstream users).
    OUTPUT = "output"


@dataclass(frozen=True)
class Route:
    """One topic: the `Topics` field that names it, its event model, how it is consumed and
    the name of the `PinWorker` method that handles it (none for an output)."""

    topic_field: str
    event: type[Event]
    delivery: Delivery
    handler: str | None = None

    def topic(self, topics: Topics) -> str:
        name = getattr(topics, self.topic_field)
        assert isinstance(name, str)
        return name

    @property
    def is_input(self) -> bool:
        return self.delivery is not Delivery.OUTPUT

    @property
    def grouped(self) -> bool:
        """Read by the consumer group (partitions shared among workers, offsets committed)."""
        return self.delivery in (Delivery.PIPELINED, Delivery.BATCHED)

    def partitions(self, group_partitions: int) -> int:
        """A broadcast topic has one partition, so every reader applies it in order."""
        return 1 if self.delivery is Delivery.BROADCAST else group_partitions


ROUTES: tuple[Route, ...] = (
    Route("created", NewPin, Delivery.PIPELINED, "new_pin_pipeline"),
    Route("repinned", Repin, Delivery.BATCHED, "handle_repins"),
    Route("model_updates", ModelUpdate, Delivery.BROADCAST, "handle_model_update"),
    Route("embedded", PinEmbedded, Delivery.OUTPUT),
    Route("dlq", DeadLetter, Delivery.OUTPUT),
)


def routes(delivery: Delivery | None = None) -> Iterator[Route]:
    return (r for r in ROUTES if delivery is None or r.delivery is delivery)


def route_of(event_type: type[Event]) -> Route:
    """The route an event type is produced to; TypeError for a type with no input route."""
    for route in ROUTES:
        if route.is_input and issubclass(event_type, route.event):
            return route
    raise TypeError(f"no input topic for {event_type.__name__}")


def group_inputs(topics: Topics) -> list[str]:
    """The topics the consumer group reads: whose lag is reported and caught up with."""
    return [r.topic(topics) for r in ROUTES if r.grouped]


def outputs(topics: Topics) -> list[str]:
    return [r.topic(topics) for r in routes(Delivery.OUTPUT)]


def topic_partitions(topics: Topics, group_partitions: int) -> dict[str, int]:
    """Every topic of the table → its partition count, for topic creation."""
    return {r.topic(topics): r.partitions(group_partitions) for r in ROUTES}
