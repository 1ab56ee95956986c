"""The backfill's writers rule without services: who is pending, how the wait ends."""

from __future__ import annotations

import re

import pytest

from streams.writers import WritersNotReady, new_writer_id, pending_writers, wait_for_writers


class Answers:
    """A WriterCheck that answers from a list (the last answer repeats), on a fake clock."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.now = 0.0
        self.asked = 0

    def pending(self, version: int) -> list[str]:
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def describe(self) -> str:
        return "consumer group 'g'"

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def wait(check: Answers, timeout_s: float) -> None:
    wait_for_writers(check, 2, timeout_s, sleep=check.sleep, clock=check.clock)


def test_pending_are_the_members_without_a_mark() -> None:
    assert pending_writers(["w2", "w1", "w3"], {"w1", "gone"}) == ["w2", "w3"]
    assert pending_writers([], {"w1"}) == []  # no worker runs: nothing to wait for


def test_the_wait_ends_when_every_member_writes_the_version() -> None:
    check = Answers(["w1", "w2"], ["w2"], [])
    wait(check, timeout_s=60)
    assert check.asked == 3 and check.now == 2.0


def test_an_unreachable_store_is_not_yet_and_a_bug_is_raised() -> None:
    check = Answers(ConnectionError("kafka down"), [])
    wait(check, timeout_s=60)
    assert check.asked == 2
    with pytest.raises(KeyError):
        wait(Answers(KeyError("bug")), timeout_s=60)


def test_after_the_timeout_it_names_the_workers_that_do_not_write_it() -> None:
    check = Answers(["w1", "w2", "w3", "w4"])
    with pytest.raises(WritersNotReady) as refused:
        wait(check, timeout_s=5)
    assert refused.value.pending == ["w1", "w2", "w3", "w4"] and check.now == 5.0
    message = str(refused.value)
    assert "4 worker(s) of the consumer group 'g' do not write v2" in message
    assert "w1, w2, w3 and 1 more" in message and "pinclip publish --version 2" in message
    once = Answers(["w1"])
    with pytest.raises(WritersNotReady):
        wait(once, timeout_s=0)  # 0: ask once
    assert once.asked == 1


def test_writer_ids_are_unique_kafka_client_ids() -> None:
    ids = {new_writer_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"pinclip-[A-Za-z0-9._-]+", i) and len(i) < 80 for i in ids)
