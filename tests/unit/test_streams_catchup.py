"""Counting our events as processed from a consumer group's committed offsets."""

from __future__ import annotations

from kafka import TopicPartition

from streams.catchup import processed_between

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_progress_counts_only_the_events_between_the_marks() -> None:
    start = {A0: 100, A1: 0}
    end = {A0: 110, A1: 5, B0: 3}  # B0 did not exist at the first mark
    assert processed_between(start, end, {}) == (0, 18)
    assert processed_between(start, end, {A0: 90, A1: 0}) == (0, 18)  # a backlog before ours
    assert processed_between(start, end, {A0: 105, A1: 5, B0: 1}) == (11, 18)
    assert processed_between(start, end, {A0: 200, A1: 9, B0: 3}) == (18, 18)  # already past


def test_nothing_produced_is_done_at_once() -> None:
    assert processed_between({A0: 7}, {A0: 7}, {}) == (0, 0)
