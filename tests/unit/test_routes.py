"""The route table (streams/routes.py) is what the app, the producer, topic creation and
catch-up read: every topic is in it once, every input names a handler the worker has, and a new
event type added to the table alone reaches all of them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from streams_fakes import worker_config

from streams import routes as route_table
from streams.app import create_app
from streams.config import Topics
from streams.events import DeadLetter, Event, ModelUpdate, NewPin, PinEmbedded, Repin
from streams.new_pins import BatchOutcome
from streams.pipeline import SourceRecord
from streams.routes import Delivery, Route, group_inputs, outputs, route_of, topic_partitions
from streams.topics import wanted_topics
from streams.worker import PinWorker

NOT_ROUTED = {"reembed"}  # the backfill's own work topics (pinclip.reembed)


def test_every_topic_has_exactly_one_route() -> None:
    named = [route.topic_field for route in route_table.ROUTES]
    assert sorted(named) == sorted(f.name for f in fields(Topics) if f.name not in NOT_ROUTED)


def test_each_input_event_type_goes_to_its_own_topic() -> None:
    topics = Topics.with_prefix("t")
    assert route_of(NewPin).topic(topics) == "t.pins.created"
    assert route_of(Repin).topic(topics) == "t.pins.repinned"
    assert route_of(ModelUpdate).topic(topics) == "t.model.updates"
    for output in (PinEmbedded, DeadLetter):  # nobody produces the worker's outputs for it
        with pytest.raises(TypeError, match=output.__name__):
            route_of(output)


def test_every_input_names_a_handler_the_worker_has() -> None:
    for route in route_table.ROUTES:
        if not route.is_input:
            assert route.handler is None
            continue
        assert route.handler is not None
        handler = getattr(PinWorker, route.handler)
        if route.delivery is Delivery.PIPELINED:  # returns the pipeline the agent submits to
            assert not inspect.iscoroutinefunction(handler)
        else:  # awaited with the records
            assert inspect.iscoroutinefunction(handler)


def test_topic_creation_and_catch_up_read_the_table() -> None:
    topics = Topics.with_prefix("t")
    assert topic_partitions(topics, 6) == {
        "t.pins.created": 6,
        "t.pins.repinned": 6,
        "t.model.updates": 1,  # broadcast: one partition, applied in order by every worker
        "t.pins.embedded": 6,
        "t.pins.dlq": 6,
    }
    assert group_inputs(topics) == ["t.pins.created", "t.pins.repinned"]
    assert outputs(topics) == ["t.pins.embedded", "t.pins.dlq"]


# --- a new event type: its model, its topic, one route, its handler ---------------------------


class PinDeleted(Event):
    pin_id: str


@dataclass(frozen=True)
class TopicsWithDeletions(Topics):
    deleted: str = "pins.deleted"


class DeletingWorker(PinWorker):
    async def handle_deletions(self, records: list[SourceRecord]) -> BatchOutcome:
        return BatchOutcome()


def test_a_new_route_reaches_the_app_topic_creation_and_catch_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted = Route("deleted", PinDeleted, Delivery.BATCHED, "handle_deletions")
    monkeypatch.setattr(route_table, "ROUTES", (*route_table.ROUTES, deleted))
    config = worker_config(tmp_path, topics=TopicsWithDeletions.with_prefix("x"))

    assert route_of(PinDeleted).topic(config.topics) == "x.pins.deleted"
    assert wanted_topics(config)["x.pins.deleted"] == config.topic_partitions
    assert "x.pins.deleted" in group_inputs(config.topics)

    app = create_app(config, DeletingWorker(config, encoder_loader=lambda _: None))
    agents = {name: agent.channel.get_topic_name() for name, agent in app.agents.items()}
    assert agents == {
        "pinclip.created": "x.pins.created",
        "pinclip.repinned": "x.pins.repinned",
        "pinclip.deleted": "x.pins.deleted",
    }
